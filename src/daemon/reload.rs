//! `systemctl reload` (SIGHUP): the config file is read again and applied without dropping
//! a connection or a session.
//!
//! - Logins use the new settings from their next request on: auth connections (which
//!   Postfix keeps for an smtpd process's whole life) ask a [`Live`] service, swapped whole.
//! - Milter sessions finish on the settings they started with; new sessions get the new
//!   ones (a new generation of the milter accepts on the same socket, the old one stops
//!   accepting and lives until its last session ends).
//! - What a running process cannot change (its sockets, its data directory and store, the
//!   auth connection limits) is named in a warning and applies at the next restart.
//! - A config that does not load, or whose services cannot be built (a bad DNS setting, an
//!   unreadable ARC key), is refused as a whole with an error; the old one stays.

use std::sync::{Arc, RwLock};

use dovecot_auth::{Attempt, Refusal, Verdict, Verifier};

use crate::config::Config;

/// What `run` needs to reload: the SIGHUP requests, the loader (the same file and
/// overrides as at start) and a hook for what lives outside the daemon (the log level).
pub struct Reload {
    pub requests: tokio::sync::mpsc::UnboundedReceiver<()>,
    pub load: Box<dyn Fn() -> Result<Config, String> + Send>,
    pub applied: Box<dyn Fn(&Config) + Send>,
}

/// A service replaced whole on reload; each use takes the current one.
pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    pub fn new(value: Arc<T>) -> Self {
        Live(RwLock::new(value))
    }

    pub fn get(&self) -> Arc<T> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn set(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

impl<V: Verifier> Verifier for Live<V> {
    async fn verify(&self, attempt: &Attempt) -> Verdict {
        let current = self.get();
        current.verify(attempt).await
    }

    fn refused(&self, attempt: &Attempt, why: Refusal) {
        self.get().refused(attempt, why)
    }
}

/// The keys whose change waits for a restart, as `(key, old, new)` text.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |key: &'static str, same: bool| {
        if !same {
            out.push(key);
        }
    };
    check("data_dir", old.data_dir == new.data_dir);
    check("store", old.store == new.store);
    check("sockets", old.sockets == new.sockets);
    check("auth.listen", old.auth.listen == new.auth.listen);
    check(
        "auth.max_connections",
        old.auth.max_connections == new.auth.max_connections,
    );
    check(
        "auth.idle_timeout",
        old.auth.idle_timeout == new.auth.idle_timeout,
    );
    check(
        "submission.listen",
        old.submission.listen == new.submission.listen,
    );
    check("inbound.listen", old.inbound.listen == new.inbound.listen);
    check("drain_timeout", old.drain_timeout == new.drain_timeout);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_keys_are_named_and_the_rest_is_not() {
        let old = Config::default_config();
        let mut new = old.clone();
        new.inbound.authserv_id = "mx.example".into();
        new.auth.throttle.block_after = 3;
        new.log_level = crate::config::LogLevel::Debug;
        assert!(restart_only_changes(&old, &new).is_empty());
        new.auth.listen = "inet:127.0.0.1:4000".parse().unwrap();
        new.store.busy_timeout = crate::config::HumanDuration(std::time::Duration::from_secs(9));
        assert_eq!(
            restart_only_changes(&old, &new),
            vec!["store", "auth.listen"]
        );
    }
}
