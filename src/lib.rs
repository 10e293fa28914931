//! postwarden: the decisions behind an authenticated-submission Postfix gateway.

pub mod address;
pub mod auth;
pub mod cli;
pub mod config;
pub mod credential;
pub mod dkim;
pub mod dnscheck;
pub mod events;
pub mod milter;
pub mod policy;
pub mod postfix_setup;
pub mod server;
pub mod store;
pub mod systemd;
pub mod throttle;
pub mod verdicts;
