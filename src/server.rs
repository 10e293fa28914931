//! The daemon: `run(config, shutdown)` opens the store, binds the listeners, spawns the
//! services and returns when `shutdown` resolves.

use std::future::Future;
use std::time::Duration;

use tracing::{info, warn};

use crate::config::Config;
use crate::store::{self, Store};

/// How often old events are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Removes events older than the configured retention ("0s" keeps them).
fn prune(cfg: &Config) {
    let retention = cfg.store.event_retention.0;
    if retention.is_zero() {
        return;
    }
    let before = store::now() - retention.as_secs() as i64;
    match Store::open_existing(&cfg.store_path(), cfg.store.busy_timeout.0)
        .and_then(|mut s| s.prune_events(before))
    {
        Ok(0) => {}
        Ok(n) => info!(removed = n, "old events removed"),
        Err(e) => warn!(error = %e, "event pruning failed"),
    }
}

/// Runs the daemon until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // Create and migrate the store once; requests open it without creating it.
    let store = Store::open(&cfg.store_path(), cfg.store.busy_timeout.0, "postwarden")?;
    drop(store);
    let prune_cfg = cfg.clone();
    let pruner = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            let c = prune_cfg.clone();
            let _ = tokio::task::spawn_blocking(move || prune(&c)).await;
        }
    });
    info!(
        data_dir = %cfg.data_dir.display(),
        store = %cfg.store_path().display(),
        "postwarden ready"
    );
    shutdown.await;
    pruner.abort();
    info!("postwarden stopped");
    Ok(())
}
