use std::process::ExitCode;

use clap::Parser;
use postwarden::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run => run(&cli),
        _ => cli::admin(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postwarden: {}", e.message());
            if let (true, Some(doc)) = (cli.json, e.json()) {
                println!("{doc:#}");
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run(cli: &Cli) -> cli::CliResult {
    let cfg = cli::load_config(cli)?;
    use tracing_subscriber::{reload, EnvFilter};
    // RUST_LOG, when set, wins over log_level, also on reload.
    let from_env = EnvFilter::try_from_default_env().ok();
    let pinned = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(cfg.log_level.as_str()));
    let (filter, filter_handle) = reload::Layer::new(filter);
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                // Values clients control (logins, HELO names, addresses) never break a line.
                .fmt_fields(postwarden::logging::EscapingFields)
                // Colours only on a terminal: not in journald or log files.
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr),
        )
        .init();
    match cli::config_path(cli) {
        Some(p) => tracing::info!(config = %p.display(), "configuration file"),
        None => tracing::info!("no configuration file: the embedded default applies"),
    }
    cli::ensure_data_dir(&cfg.data_dir)?;
    // Before the runtime starts threads: this also clears the LISTEN_* variables.
    let passed = postwarden::daemon::systemd::take_listeners();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| cli::CliError::Refused(format!("cannot start the runtime: {e}")))?;
    let loader = cli.clone();
    runtime
        .block_on(async {
            // Handlers first: a signal that arrives during start-up stops the daemon once it is up.
            let (shutdown, requests) = signals()?;
            let reload = postwarden::daemon::reload::Reload {
                requests,
                load: Box::new(move || {
                    cli::load_config(&loader).map_err(|e| e.message().to_string())
                }),
                applied: Box::new(move |c| {
                    if !pinned {
                        let _ = filter_handle.reload(EnvFilter::new(c.log_level.as_str()));
                    }
                }),
            };
            postwarden::daemon::run(cfg, passed, shutdown, Some(reload)).await
        })
        .map_err(|e| cli::CliError::Refused(format!("{e:#}")))
}

/// Registers the signal handlers: the returned future resolves on SIGTERM or SIGINT; each
/// SIGHUP (`systemctl reload`) is a reload request on the returned channel.
fn signals() -> anyhow::Result<(
    impl std::future::Future<Output = ()>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
)> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the configuration");
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    Ok((
        async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received, stopping"),
                _ = int.recv() => tracing::info!("SIGINT received, stopping"),
            }
        },
        rx,
    ))
}
