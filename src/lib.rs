//! postwarden: the decisions behind an authenticated-submission Postfix gateway.

pub mod address;
pub mod auth;
pub mod cli;
pub mod config;
pub mod credential;
pub mod server;
pub mod store;
pub mod throttle;
