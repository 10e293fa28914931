//! The login decision behind the auth socket: the `dovecot-auth` verifier over the store,
//! with brute-force throttling and bounded argon2 concurrency.
//!
//! - argon2id runs on `max_parallel_hashes` threads of its own ([`hashers`]), each keeping
//!   its argon2 memory between checks, so a flood of logins cannot starve the milters'
//!   async threads or the store's blocking pool;
//! - an unknown username costs the same argon2 work as a wrong password and gets the same
//!   reply (no user enumeration);
//! - a fault (store missing, unreadable, locked past its timeout) is `Verdict::Fault`: the
//!   connection closes and Postfix answers 454, never 535;
//! - every attempt is counted in the store before its password is checked, in one atomic
//!   step with the decision to check it ([`throttle`]): at most `block_after` checks per
//!   address and `user_budget` per username (from addresses it has not logged in from)
//!   per window, however many connections ask at once; a store fault there is a fault;
//! - every attempt is an `auth` event; every reply leaves well within Postfix's 10 s.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dovecot_auth::{Attempt, Refusal, Verdict, Verifier};
use tracing::{debug, info, warn};

pub mod cache;
pub mod credential;
pub mod hash_memory;
pub mod hashers;
pub mod throttle;

use crate::config::Config;
use crate::events::EventSink;
use crate::model::{
    now, AuthReason as Reason, Event, ThrottleAttempt, ThrottleCount, ThrottleRelease,
};
use crate::store::{Pool, Store, StoreError};
use throttle::{address_key, username_key, Block, Penalty};

/// Every reply leaves within this time of the request, delays included (Postfix: 10 s).
const REPLY_BUDGET: Duration = Duration::from_millis(8000);
/// Longest wait for an argon2 slot before the attempt counts as a fault (454, retry later).
const HASH_QUEUE_WAIT: Duration = Duration::from_secs(4);

/// The verifier the auth socket serves.
pub struct AuthService {
    cfg: Arc<Config>,
    store: Arc<Pool>,
    penalty: Penalty,
    /// The throttle window and how long an address stays known, in whole seconds.
    window_secs: i64,
    known_ttl_secs: i64,
    /// The hashing slots, each a thread with its argon2 memory ([`hashers`]).
    hashers: hashers::Hashers,
    /// Verified against when the username is unknown, so that costs the same work.
    dummy_hash: String,
    /// argon2 verifications run so far (shows that every checked attempt costs one).
    verifications: Arc<AtomicU64>,
    /// Logins repeated with the password verified lately skip argon2 ([`cache`]).
    cache: Arc<cache::LoginCache>,
    events: Arc<EventSink>,
}

/// Whole seconds of a duration, rounded up (at least 1).
fn ceil_secs(d: Duration) -> i64 {
    (d.as_millis().div_ceil(1000).max(1)).min(i64::MAX as u128) as i64
}

/// What the store said about an attempt.
struct Checked {
    reason: Reason,
    organization: Option<String>,
}

/// What checking one login needs on the blocking side (the store and argon2).
struct CheckJob {
    dummy: String,
    login: String,
    password: String,
    /// The client IP recorded as the credential's last use.
    ip: Option<String>,
    /// The throttle's key for the client address.
    address: String,
    known_until: i64,
    verifications: Arc<AtomicU64>,
    cache: Arc<cache::LoginCache>,
}

impl CheckJob {
    /// Looks the login up and checks the password. A success also records the
    /// credential's last use, gives back the attempt's throttle counts (the address's,
    /// and the username's when `counted_user` says it was counted) and remembers the
    /// address as known for the username.
    ///
    /// With `cached` (the cache knew the password), a row that still matches the cache
    /// entry needs no argon2; one that does not gives `None`: check again, with a slot.
    ///
    /// `memory` is argon2's working memory (the hashing slot's).
    fn check(
        &self,
        store: &mut dyn Store,
        cached: bool,
        counted_user: Option<&str>,
        memory: &mut Vec<argon2::Block>,
    ) -> Result<Option<Checked>, StoreError> {
        let (login, password) = (self.login.as_str(), self.password.as_str());
        let record = store.login_record(login)?;
        let matches = match &record {
            Some(r)
                if cached
                    && self
                        .cache
                        .verified(login, r.credential_id, &r.hash, password) =>
            {
                true
            }
            _ if cached => return Ok(None),
            _ => {
                let hash = record
                    .as_ref()
                    .map_or(self.dummy.as_str(), |r| r.hash.as_str());
                self.verifications.fetch_add(1, Ordering::Relaxed);
                let matches =
                    hash_memory::verify_in(password, hash, memory).map_err(StoreError::Fault)?;
                if let (true, Some(r)) = (matches, &record) {
                    if !r.revoked {
                        self.cache
                            .remember(login, r.credential_id, &r.hash, password);
                    }
                }
                matches
            }
        };
        let Some(record) = record else {
            return Ok(Some(Checked {
                reason: Reason::UnknownUser,
                organization: None,
            }));
        };
        let reason = match (matches, record.revoked) {
            (false, _) => Reason::BadPassword,
            (true, true) => Reason::Revoked,
            (true, false) => {
                let release = ThrottleRelease {
                    address: &self.address,
                    username: counted_user,
                    known: Some((username_key(login), self.known_until)),
                };
                store.login_succeeded(record.credential_id, self.ip.as_deref(), &release)?;
                Reason::Ok
            }
        };
        Ok(Some(Checked {
            reason,
            organization: Some(record.organization),
        }))
    }
}

impl AuthService {
    pub fn new(
        cfg: Arc<Config>,
        store: Arc<Pool>,
        events: Arc<EventSink>,
    ) -> anyhow::Result<AuthService> {
        let th = &cfg.auth.throttle;
        let penalty = Penalty::new(th);
        let slots = match cfg.auth.max_parallel_hashes {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        let dummy_hash =
            credential::hash_password(&credential::generate_password(), &cfg.password_hash)
                .map_err(anyhow::Error::msg)?;
        Ok(AuthService {
            window_secs: ceil_secs(th.window.0),
            known_ttl_secs: ceil_secs(th.known_address_ttl.0),
            penalty,
            hashers: hashers::Hashers::new(slots)
                .map_err(|e| anyhow::anyhow!("cannot start the hashing threads: {e}"))?,
            dummy_hash,
            verifications: Arc::new(AtomicU64::new(0)),
            cache: Arc::new(cache::LoginCache::new(
                cfg.auth.login_cache_entries as usize,
                cfg.auth.login_cache_ttl.0,
            )),
            events,
            store,
            cfg,
        })
    }

    /// Counts an attempt in the store before anything is checked (blocking on the pool).
    async fn count_attempt(
        &self,
        address: &str,
        username: Option<&str>,
    ) -> Result<ThrottleCount, StoreError> {
        let (address, username) = (address.to_string(), username.map(str::to_string));
        let (window, address_limit) = (self.window_secs, self.penalty.block_after);
        self.store
            .run(move |store| {
                store.throttle_attempt(&ThrottleAttempt {
                    address: &address,
                    username: username.as_deref(),
                    now: now(),
                    window,
                    address_limit,
                })
            })
            .await
    }

    /// For a password the cache remembers: counts the attempt and, unless the count
    /// refuses it unchecked, checks it against the row, in one trip to the store. The
    /// check's outcome is `None` when refused unchecked (the caller decides as after
    /// [`count_attempt`](Self::count_attempt)).
    async fn count_and_check_remembered(
        &self,
        address: &str,
        username: Option<String>,
        job: Arc<CheckJob>,
    ) -> Result<(ThrottleCount, Option<Option<Checked>>), StoreError> {
        let address = address.to_string();
        let (window, penalty) = (self.window_secs, self.penalty);
        self.store
            .run(move |store| {
                let count = store.throttle_attempt(&ThrottleAttempt {
                    address: &address,
                    username: username.as_deref(),
                    now: now(),
                    window,
                    address_limit: penalty.block_after,
                })?;
                if penalty.block(&count).is_some() {
                    return Ok((count, None));
                }
                let counted_user = username.as_deref().filter(|_| count.username.is_some());
                let checked = job.check(store, true, counted_user, &mut Vec::new())?;
                Ok((count, Some(checked)))
            })
            .await
    }

    /// Gives back an attempt's counts when its password was never checked (best effort:
    /// keeping them only errs on the strict side).
    async fn release_unchecked(&self, address: &str, username: Option<&str>) {
        let (address, username) = (address.to_string(), username.map(str::to_string));
        let released = self
            .store
            .run(move |store| {
                store.throttle_release(&ThrottleRelease {
                    address: &address,
                    username: username.as_deref(),
                    known: None,
                })
            })
            .await;
        if let Err(e) = released {
            warn!(error = %e, "could not give back an unchecked attempt's throttle count");
        }
    }

    /// Appends the `auth` event and waits until it is written (or kept for later).
    async fn record(&self, login: &str, ip: Option<IpAddr>, reason: Reason, org: Option<String>) {
        self.events.write(Event::auth(login, ip, reason, org)).await;
    }

    /// Holds a FAIL for `delay`, but never past the reply budget counted from `started`.
    async fn hold(started: Instant, delay: Duration) {
        tokio::time::sleep(delay.min(REPLY_BUDGET.saturating_sub(started.elapsed()))).await;
    }

    async fn decide(&self, a: &Attempt) -> Verdict {
        let started = Instant::now();
        let ip = address_key(a.remote_ip);
        let fail = Verdict::Fail { reason: None };

        if !a.secured && !self.cfg.auth.allow_plaintext {
            info!(login = %a.login, client = %ip, "login refused: connection not protected by TLS");
            self.record(&a.login, a.remote_ip, Reason::NoTls, None)
                .await;
            return fail;
        }

        // Counted before anything is checked, in one atomic step: concurrent attempts
        // each get their own count, so no more than the limits reach argon2.
        let user = (!a.login.is_empty()).then(|| username_key(&a.login).to_string());
        let job = Arc::new(CheckJob {
            dummy: self.dummy_hash.clone(),
            login: a.login.clone(),
            password: a.password.clone(),
            ip: a.remote_ip.map(|i| i.to_string()),
            address: ip.clone(),
            known_until: now() + self.known_ttl_secs,
            verifications: Arc::clone(&self.verifications),
            cache: Arc::clone(&self.cache),
        });
        // A password verified lately for this username skips the argon2 queue, and is
        // counted and checked in one trip to the store (the row decides whether it still
        // counts: `None` then, and it is checked again with a slot).
        let cached = self.cache.knows(&a.login, &a.password);
        let counted = if cached {
            self.count_and_check_remembered(&ip, user.clone(), Arc::clone(&job))
                .await
        } else {
            self.count_attempt(&ip, user.as_deref())
                .await
                .map(|c| (c, None))
        };
        let (count, remembered) = match counted {
            Ok(c) => c,
            Err(e) => {
                let step = if cached {
                    ""
                } else {
                    " (counting the attempt)"
                };
                warn!(login = %a.login, client = %ip, error = %e, "store fault during login{step}: temporary failure");
                self.record(&a.login, a.remote_ip, Reason::Fault, None)
                    .await;
                return Verdict::Fault(e.to_string());
            }
        };
        let delay = self.penalty.delay_after(&count);
        if let Some(block) = self.penalty.block(&count) {
            let why = match block {
                Block::Address => "too many attempts from this address",
                Block::Username => {
                    "too many attempts for this username from addresses it has not logged in from"
                }
            };
            info!(login = %a.login, client = %ip, delay_ms = delay.as_millis() as u64, "login refused unchecked: {why}");
            self.record(&a.login, a.remote_ip, Reason::Throttled, None)
                .await;
            Self::hold(started, delay).await;
            return fail;
        }
        // The username's count, when this attempt is in it (not from a known address).
        let counted_user = user.filter(|_| count.username.is_some());

        let repeated = matches!(remembered, Some(Some(_)));
        let checked = match remembered {
            Some(Some(c)) => Ok(c),
            // Not remembered, or the row changed since: checked in full on a hashing slot.
            _ => {
                let (job, counted) = (Arc::clone(&job), counted_user.clone());
                let pool = Arc::clone(&self.store);
                let ran = self
                    .hashers
                    .run(HASH_QUEUE_WAIT, move |memory| {
                        pool.with(|store| job.check(store, false, counted.as_deref(), memory))
                    })
                    .await;
                match ran {
                    Ok(result) => result.map(|c| c.expect("a full check always decides")),
                    Err(hashers::Saturated) => {
                        warn!(login = %a.login, client = %ip, "too many logins at once: temporary failure");
                        self.release_unchecked(&ip, counted_user.as_deref()).await;
                        self.record(&a.login, a.remote_ip, Reason::Fault, None)
                            .await;
                        return Verdict::Fault("password checks saturated".into());
                    }
                }
            }
        };
        let checked = match checked {
            Ok(c) => c,
            Err(e) => {
                warn!(login = %a.login, client = %ip, error = %e, "store fault during login: temporary failure");
                self.record(&a.login, a.remote_ip, Reason::Fault, None)
                    .await;
                return Verdict::Fault(e.to_string());
            }
        };

        if checked.reason == Reason::Ok {
            info!(login = %a.login, client = %ip, org = checked.organization.as_deref().unwrap_or(""), "login ok");
            if repeated {
                // A repeated login (a device logging in per message): its event is written
                // in order with the others, but the reply does not wait for the batch.
                self.events.spawn_write(Event::auth(
                    &a.login,
                    a.remote_ip,
                    Reason::Ok,
                    checked.organization,
                ));
            } else {
                self.record(&a.login, a.remote_ip, Reason::Ok, checked.organization)
                    .await;
            }
            return Verdict::Ok {
                user: a.login.clone(),
            };
        }
        info!(
            login = %a.login,
            client = %ip,
            reason = checked.reason.as_str(),
            delay_ms = delay.as_millis() as u64,
            "login failed"
        );
        self.record(&a.login, a.remote_ip, checked.reason, checked.organization)
            .await;
        Self::hold(started, delay).await;
        fail
    }
}

impl Verifier for AuthService {
    async fn verify(&self, attempt: &Attempt) -> Verdict {
        self.decide(attempt).await
    }

    fn refused(&self, attempt: &Attempt, why: Refusal) {
        let reason = match why {
            Refusal::AuthzidMismatch => Reason::AuthzidMismatch,
            _ => Reason::Malformed,
        };
        let ip = address_key(attempt.remote_ip);
        debug!(login = %attempt.login, client = %ip, why = %why, "login refused by the protocol");
        // Counted against the address like any failure (no password was checked, so not
        // against the username's budget); this reply does not wait for it.
        let (store, window, address_limit) = (
            Arc::clone(&self.store),
            self.window_secs,
            self.penalty.block_after,
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let counted = store
                    .run(move |s| {
                        s.throttle_attempt(&ThrottleAttempt {
                            address: &ip,
                            username: None,
                            now: now(),
                            window,
                            address_limit,
                        })
                    })
                    .await;
                if let Err(e) = counted {
                    warn!(error = %e, "could not count a protocol refusal for throttling");
                }
            });
        }
        self.events
            .spawn_write(Event::auth(&attempt.login, attempt.remote_ip, reason, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventFilter, EventKind, SenderCheck};
    use crate::store::prelude::*;
    use crate::store::sqlite::SqliteStore as Store;
    use dovecot_auth::Mechanism;

    struct Fixture {
        _dir: tempfile::TempDir,
        cfg: Arc<Config>,
        service: AuthService,
        user: String,
        pass: String,
    }

    fn fixture(extra: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "data_dir = {:?}\n[password_hash]\nmemory_kib = 64\niterations = 1\n[auth.throttle]\nfree_failures = 2\ndelay = \"10ms\"\nmax_delay = \"40ms\"\nblock_after = 5\n{extra}",
            dir.path().display().to_string()
        );
        let cfg = Arc::new(Config::parse(&text, "test").unwrap());
        let mut store = Store::open(&cfg.store_path(), Duration::from_secs(1), "t").unwrap();
        store.org_add("acme", SenderCheck::Account).unwrap();
        let pass = credential::generate_password();
        let hash = credential::hash_password(&pass, &cfg.password_hash).unwrap();
        store
            .credential_add("acme", "laptop", "acme-laptop-aaaaaa", &hash)
            .unwrap();
        let service = AuthService::new(
            Arc::clone(&cfg),
            Pool::new(&cfg),
            EventSink::new(Pool::new(&cfg)),
        )
        .unwrap();
        Fixture {
            _dir: dir,
            cfg,
            service,
            user: "acme-laptop-aaaaaa".into(),
            pass,
        }
    }

    fn attempt(login: &str, password: &str, ip: &str, secured: bool) -> Attempt {
        Attempt {
            id: 1,
            mechanism: Mechanism::Plain,
            service: "smtp".into(),
            local_ip: None,
            remote_ip: Some(ip.parse().unwrap()),
            local_port: None,
            remote_port: None,
            secured,
            login: login.into(),
            authzid: None,
            password: password.into(),
            client_pid: 1,
        }
    }

    fn reasons(f: &Fixture) -> Vec<String> {
        // Repeated logins do not wait for their event: everything handed over first.
        f.service.events.flush_blocking();
        reasons_in(&f.cfg)
    }

    fn reasons_in(cfg: &Config) -> Vec<String> {
        let store = Store::open_existing(&cfg.store_path(), Duration::from_secs(1)).unwrap();
        store
            .events(&EventFilter {
                kind: Some(EventKind::Auth),
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .map(|e| e.reason.unwrap())
            .collect()
    }

    /// The store's live throttle counters, by (kind, key).
    fn counts(f: &Fixture) -> std::collections::HashMap<(&'static str, String), u32> {
        let store = Store::open_existing(&f.cfg.store_path(), Duration::from_secs(1)).unwrap();
        store
            .throttle_list(now())
            .unwrap()
            .into_iter()
            .map(|e| ((e.kind.as_str(), e.key), e.failures))
            .collect()
    }

    const FAIL: Verdict = Verdict::Fail { reason: None };

    #[tokio::test]
    async fn right_wrong_unknown_revoked() {
        let f = fixture("");
        let ok = f
            .service
            .verify(&attempt(&f.user, &f.pass, "192.0.2.1", true))
            .await;
        assert_eq!(
            ok,
            Verdict::Ok {
                user: f.user.clone()
            }
        );
        assert_eq!(
            f.service
                .verify(&attempt(&f.user, "wrong", "192.0.2.1", true))
                .await,
            FAIL
        );
        assert_eq!(
            f.service
                .verify(&attempt("acme-ghost", &f.pass, "192.0.2.1", true))
                .await,
            FAIL
        );
        assert_eq!(
            f.service
                .verify(&attempt(&f.user.to_uppercase(), &f.pass, "192.0.2.1", true))
                .await,
            FAIL
        );
        let mut store = Store::open_existing(&f.cfg.store_path(), Duration::from_secs(1)).unwrap();
        store.credential_revoke(&f.user).unwrap();
        assert_eq!(
            f.service
                .verify(&attempt(&f.user, &f.pass, "192.0.2.1", true))
                .await,
            FAIL
        );
        assert_eq!(
            reasons(&f),
            [
                "ok",
                "bad_password",
                "unknown_user",
                "unknown_user",
                "revoked"
            ]
        );
        let cred = &store.credential_list(None).unwrap()[0];
        assert_eq!(cred.last_ip.as_deref(), Some("192.0.2.1"));
    }

    #[tokio::test]
    async fn repeated_logins_skip_argon2_until_the_row_changes_and_revoke_applies_at_once() {
        let f = fixture("");
        let count = || f.service.verifications.load(Ordering::Relaxed);
        let ok = Verdict::Ok {
            user: f.user.clone(),
        };
        let login = |pass: &str| {
            let a = attempt(&f.user, pass, "192.0.2.1", true);
            let service = &f.service;
            async move { service.verify(&a).await }
        };
        assert_eq!(login(&f.pass).await, ok);
        assert_eq!(count(), 1);
        for _ in 0..5 {
            assert_eq!(login(&f.pass).await, ok);
        }
        assert_eq!(count(), 1, "repeated logins ran argon2");
        // A wrong password is checked in full and does not enter the cache.
        assert_eq!(login("wrong").await, FAIL);
        assert_eq!(count(), 2);
        assert_eq!(login("wrong").await, FAIL);
        assert_eq!(count(), 3, "a failure was cached");
        assert_eq!(login(&f.pass).await, ok);
        assert_eq!(count(), 3);
        // Everything else still happens: every login is an event, the last one recorded.
        assert_eq!(reasons(&f).iter().filter(|r| *r == "ok").count(), 7);

        // Another front end resets the hash: the old password fails at the next login.
        let db = rusqlite::Connection::open(f.cfg.store_path()).unwrap();
        let other = credential::hash_password("another", &f.cfg.password_hash).unwrap();
        db.execute(
            "UPDATE credential SET hash = ?1 WHERE username = ?2",
            [&other, &f.user],
        )
        .unwrap();
        assert_eq!(login(&f.pass).await, FAIL);
        assert_eq!(count(), 4, "the changed row is checked in full");
        assert_eq!(login("another").await, ok);
        assert_eq!(login("another").await, ok);
        assert_eq!(count(), 5);

        // Revoked with the cache warm: refused at the very next login.
        let mut store = Store::open_existing(&f.cfg.store_path(), Duration::from_secs(1)).unwrap();
        store.credential_revoke(&f.user).unwrap();
        assert_eq!(login("another").await, FAIL);
        assert_eq!(reasons(&f).last().unwrap(), "revoked");
        // Deleted: unknown, at once.
        db.execute("DELETE FROM credential WHERE username = ?1", [&f.user])
            .unwrap();
        assert_eq!(login("another").await, FAIL);
        assert_eq!(reasons(&f).last().unwrap(), "unknown_user");
    }

    #[tokio::test]
    async fn a_remembered_password_still_meets_the_throttle_and_store_faults() {
        let f = fixture("");
        let ok = Verdict::Ok {
            user: f.user.clone(),
        };
        let from = |ip: &'static str, pass: &str| {
            let a = attempt(&f.user, pass, ip, true);
            let service = &f.service;
            async move { service.verify(&a).await }
        };
        assert_eq!(from("192.0.2.1", &f.pass).await, ok);
        let checks = f.service.verifications.load(Ordering::Relaxed);
        // Another address spends its block_after (5) checks on wrong passwords: the right,
        // remembered one from there is then refused unchecked like any other.
        for _ in 0..5 {
            assert_eq!(from("198.51.100.7", "wrong").await, FAIL);
        }
        assert_eq!(from("198.51.100.7", &f.pass).await, FAIL);
        assert_eq!(reasons(&f).last().unwrap(), "throttled");
        assert_eq!(
            f.service.verifications.load(Ordering::Relaxed),
            checks + 5,
            "the refused login was checked"
        );
        // From its own address it still logs in without argon2, and gives back its count.
        assert_eq!(from("192.0.2.1", &f.pass).await, ok);
        assert_eq!(f.service.verifications.load(Ordering::Relaxed), checks + 5);
        let store = Store::open_existing(&f.cfg.store_path(), Duration::from_secs(1)).unwrap();
        let busy: Vec<String> = store
            .throttle_list(now())
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert!(!busy.iter().any(|k| k == "192.0.2.1"), "{busy:?}");

        // The store gone: a fault (454), not a failure, with the cache warm.
        drop(store);
        std::fs::remove_file(f.cfg.store_path()).unwrap();
        assert!(matches!(
            from("192.0.2.1", &f.pass).await,
            Verdict::Fault(_)
        ));
    }

    #[tokio::test]
    async fn a_zero_size_login_cache_checks_every_login() {
        let f = fixture("[auth]\nlogin_cache_entries = 0\n");
        for _ in 0..3 {
            f.service
                .verify(&attempt(&f.user, &f.pass, "192.0.2.1", true))
                .await;
        }
        assert_eq!(f.service.verifications.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn unknown_user_costs_one_argon2_verification_like_a_wrong_password() {
        let f = fixture("");
        let count = || f.service.verifications.load(Ordering::Relaxed);
        let before = count();
        f.service
            .verify(&attempt(&f.user, "wrong", "198.51.100.1", true))
            .await;
        let wrong = count() - before;
        let before = count();
        f.service
            .verify(&attempt("nobody-at-all", "wrong", "198.51.100.2", true))
            .await;
        let unknown = count() - before;
        assert_eq!((wrong, unknown), (1, 1));
    }

    #[tokio::test]
    async fn plaintext_refused_unless_allowed() {
        let f = fixture("");
        assert_eq!(
            f.service
                .verify(&attempt(&f.user, &f.pass, "192.0.2.1", false))
                .await,
            FAIL
        );
        assert_eq!(reasons(&f), ["no_tls"]);
        let f = fixture("[auth]\nallow_plaintext = true\n");
        let v = f
            .service
            .verify(&attempt(&f.user, &f.pass, "192.0.2.1", false))
            .await;
        assert_eq!(
            v,
            Verdict::Ok {
                user: f.user.clone()
            }
        );
    }

    #[tokio::test]
    async fn failures_are_delayed_then_blocked_and_a_success_gives_back_only_its_count() {
        let f = fixture("");
        let mut took = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            assert_eq!(
                f.service
                    .verify(&attempt(&f.user, "wrong", "192.0.2.9", true))
                    .await,
                FAIL
            );
            took.push(t.elapsed());
        }
        // 3rd failure: 10 ms, 4th: 20 ms, 5th: 40 ms (cap).
        assert!(took[4] >= Duration::from_millis(40), "{took:?}");
        assert!(took[2] >= Duration::from_millis(10), "{took:?}");
        // Past block_after (5) from this IP: refused unchecked, even with the right password.
        let before = f.service.verifications.load(Ordering::Relaxed);
        assert_eq!(
            f.service
                .verify(&attempt(&f.user, &f.pass, "192.0.2.9", true))
                .await,
            FAIL
        );
        assert_eq!(
            f.service.verifications.load(Ordering::Relaxed),
            before,
            "a blocked attempt spent argon2 work"
        );
        assert_eq!(reasons(&f).last().unwrap(), "throttled");
        // Another IP gets in; that success gives back its own count only.
        let v = f
            .service
            .verify(&attempt(&f.user, &f.pass, "192.0.2.10", true))
            .await;
        assert_eq!(
            v,
            Verdict::Ok {
                user: f.user.clone()
            }
        );
        let c = counts(&f);
        assert_eq!(c.get(&("address", "192.0.2.9".into())), Some(&6));
        assert_eq!(c.get(&("username", f.user.clone())), Some(&5));
        assert_eq!(c.get(&("address", "192.0.2.10".into())), None);
    }

    #[tokio::test]
    async fn store_faults_are_faults_not_failures() {
        let f = fixture("");
        std::fs::remove_file(f.cfg.store_path()).unwrap();
        let v = f
            .service
            .verify(&attempt(&f.user, &f.pass, "192.0.2.1", true))
            .await;
        assert!(matches!(v, Verdict::Fault(_)), "{v:?}");
        // The daemon never recreates a deleted store.
        assert!(!f.cfg.store_path().exists());
    }

    #[tokio::test]
    async fn corrupt_stored_hash_is_a_fault() {
        let f = fixture("");
        let mut store = Store::open_existing(&f.cfg.store_path(), Duration::from_secs(1)).unwrap();
        store
            .credential_add(
                "acme",
                "corrupt",
                "acme-corrupt",
                "$argon2id$v=19$m=64,t=1,p=1$***$***",
            )
            .unwrap();
        let v = f
            .service
            .verify(&attempt("acme-corrupt", &f.pass, "192.0.2.1", true))
            .await;
        assert!(matches!(v, Verdict::Fault(_)), "{v:?}");
    }

    #[tokio::test]
    async fn protocol_refusals_are_logged_and_counted() {
        let f = fixture("");
        let mut a = attempt(&f.user, "", "192.0.2.3", true);
        a.authzid = Some("someone-else".into());
        f.service.refused(&a, Refusal::AuthzidMismatch);
        f.service
            .refused(&attempt("", "", "192.0.2.3", true), Refusal::InvalidBase64);
        wait_until(|| counts(&f).get(&("address", "192.0.2.3".into())) == Some(&2)).await;
        wait_until(|| reasons(&f).len() == 2).await;
        assert_eq!(reasons(&f), ["authzid_mismatch", "malformed"]);
    }

    #[tokio::test]
    async fn ipv6_clients_are_counted_per_64() {
        let f = fixture("");
        // Five different addresses of one /64 reach block_after (5) together.
        for i in 1..=5 {
            let ip = format!("2001:db8:1:2::{i}");
            assert_eq!(
                f.service
                    .verify(&attempt(&f.user, "wrong", &ip, true))
                    .await,
                FAIL
            );
        }
        assert_eq!(
            counts(&f).get(&("address", "2001:db8:1:2::/64".into())),
            Some(&5)
        );
        let v = f
            .service
            .verify(&attempt(&f.user, &f.pass, "2001:db8:1:2::99", true))
            .await;
        assert_eq!(v, FAIL, "the /64 is blocked");
        assert_eq!(reasons(&f).last().unwrap(), "throttled");
        // Another /64 is not.
        let v = f
            .service
            .verify(&attempt(&f.user, &f.pass, "2001:db8:1:3::1", true))
            .await;
        assert_eq!(
            v,
            Verdict::Ok {
                user: f.user.clone()
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_attempts_from_one_address_get_at_most_block_after_checks() {
        let f = fixture("");
        let (cfg, user, service) = (f.cfg.clone(), f.user.clone(), Arc::new(f.service));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..100 {
            let (service, user) = (Arc::clone(&service), user.clone());
            tasks.spawn(async move {
                service
                    .verify(&attempt(&user, &format!("guess-{i}"), "203.0.113.7", true))
                    .await
            });
        }
        while let Some(v) = tasks.join_next().await {
            assert_eq!(v.unwrap(), FAIL);
        }
        let checked = service.verifications.load(Ordering::Relaxed);
        assert!(
            checked <= u64::from(cfg.auth.throttle.block_after),
            "{checked} argon2 checks for block_after = {}",
            cfg.auth.throttle.block_after
        );
        assert_eq!(checked, 5, "the first five were checked");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_username_from_many_addresses_is_bounded_but_its_known_address_logs_in() {
        let f = fixture(
            "user_budget = 3
",
        );
        // The real user logs in from their usual address: it becomes known.
        let ok = Verdict::Ok {
            user: f.user.clone(),
        };
        assert_eq!(
            f.service
                .verify(&attempt(&f.user, &f.pass, "192.0.2.50", true))
                .await,
            ok
        );
        let before = f.service.verifications.load(Ordering::Relaxed);
        let (user, service) = (f.user.clone(), Arc::new(f.service));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..60 {
            let (service, user) = (Arc::clone(&service), user.clone());
            tasks.spawn(async move {
                let ip = format!("198.51.{}.{}", 100 + i / 200, 1 + i % 200);
                service
                    .verify(&attempt(&user, &format!("guess-{i}"), &ip, true))
                    .await
            });
        }
        while let Some(v) = tasks.join_next().await {
            assert_eq!(v.unwrap(), FAIL);
        }
        let checked = service.verifications.load(Ordering::Relaxed) - before;
        assert!(checked <= 3, "{checked} argon2 checks for user_budget = 3");
        assert_eq!(checked, 3);
        let throttled = reasons_in(&f.cfg)
            .iter()
            .filter(|r| *r == "throttled")
            .count();
        assert_eq!(throttled, 57);
        // The real user's known address keeps its normal path, with the right password...
        assert_eq!(
            service
                .verify(&attempt(&user, &f.pass, "192.0.2.50", true))
                .await,
            ok
        );
        // ... and a wrong one is still checked (and failed) there.
        let before = service.verifications.load(Ordering::Relaxed);
        assert_eq!(
            service
                .verify(&attempt(&user, "typo", "192.0.2.50", true))
                .await,
            FAIL
        );
        assert_eq!(service.verifications.load(Ordering::Relaxed), before + 1);
        // A new address gets no check until the window passes, even with the password.
        assert_eq!(
            service
                .verify(&attempt(&user, &f.pass, "192.0.2.51", true))
                .await,
            FAIL
        );
        assert_eq!(service.verifications.load(Ordering::Relaxed), before + 1);
        // Other usernames are not affected.
        assert_eq!(
            service
                .verify(&attempt("acme-ghost", "x", "198.51.100.1", true))
                .await,
            FAIL
        );
        assert_eq!(service.verifications.load(Ordering::Relaxed), before + 2);
    }

    #[tokio::test]
    async fn the_block_survives_a_restart() {
        let f = fixture("");
        for i in 0..5 {
            f.service
                .verify(&attempt(&f.user, &format!("guess-{i}"), "192.0.2.77", true))
                .await;
        }
        // A new service over the same store: the daemon restarted, or another front end.
        let restarted = AuthService::new(
            Arc::clone(&f.cfg),
            Pool::new(&f.cfg),
            EventSink::new(Pool::new(&f.cfg)),
        )
        .unwrap();
        assert_eq!(
            restarted
                .verify(&attempt(&f.user, &f.pass, "192.0.2.77", true))
                .await,
            FAIL
        );
        assert_eq!(restarted.verifications.load(Ordering::Relaxed), 0);
    }

    async fn wait_until(mut cond: impl FnMut() -> bool) {
        for _ in 0..200 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached");
    }
}
