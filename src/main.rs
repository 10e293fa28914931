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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cfg.log_level.as_str()));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Values clients control (logins, HELO names, addresses) never break a line.
        .fmt_fields(postwarden::logging::EscapingFields)
        // Colours only on a terminal: not in journald or log files.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
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
    runtime
        .block_on(async {
            // Handlers first: a signal that arrives during start-up stops the daemon once it is up.
            let shutdown = shutdown_signal()?;
            postwarden::daemon::run(cfg, passed, shutdown).await
        })
        .map_err(|e| cli::CliError::Refused(format!("{e:#}")))
}

/// Registers SIGTERM and SIGINT handlers; the returned future resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // SIGHUP would end the process by default; there is nothing to reload (the store is
    // read live; the config file is read at start), so say so and keep serving.
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM received, stopping"); break }
                _ = int.recv() => { tracing::info!("SIGINT received, stopping"); break }
                _ = hup.recv() => tracing::warn!(
                    "SIGHUP ignored: store changes apply at once; restart postwarden to read a changed config file"
                ),
            }
        }
    })
}
