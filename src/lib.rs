//! postwarden: the decisions behind an authenticated-submission Postfix gateway.
//!
//! A map, by concern (DESIGN.md has the full table):
//! - `model`: the shared vocabulary, no I/O;
//! - `sender`: who may send as whom (the rule, and the one decision every front end calls);
//! - `login`: is this login good (credentials, the verifier behind the auth socket, throttling);
//! - `store`: the store interface and its backends (the only SQL);
//! - `milter`: the submission and inbound milters (callbacks and session state);
//! - `authn`: inbound mail authentication (SPF, DKIM, DMARC verdicts, the DMARC
//!   disposition, Authentication-Results, `dns-check`) and its DNS source;
//! - `dkim`: DKIM keys, their DNS records, and signing;
//! - `events`: the daemon's event writer (events and DMARC results);
//! - `reports`: DMARC aggregate reports (`postwarden dmarc report`);
//! - `daemon`: listeners, socket activation, `run`;
//! - `cli`: the admin commands; `config`: the configuration.

pub mod address;
pub mod authn;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dkim;
pub mod events;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod logging;
pub mod login;
pub mod milter;
pub mod model;
pub mod postfix_setup;
pub mod reports;
pub mod sender;
pub mod store;
