//! The milters: indymilter callbacks and session state, nothing else.

pub mod submission;

use tokio::sync::watch;
use tracing::error;

use crate::server::Listener;

/// Runs a milter on `listener` until `stop` turns true; in-flight sessions are told to end.
pub async fn serve<T: Send + 'static>(
    listener: Listener,
    callbacks: indymilter::Callbacks<T>,
    mut stop: watch::Receiver<bool>,
) {
    let config = indymilter::Config {
        // Postfix waits milter_command_timeout (30 s) per step; a hung client connection is
        // closed well before indymilter's two-hour default.
        connection_timeout: std::time::Duration::from_secs(600),
        ..Default::default()
    };
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = indymilter::run(listener, callbacks, config, shutdown).await {
        error!(error = %e, "milter stopped");
    }
}
