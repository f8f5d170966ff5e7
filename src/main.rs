//! `cdc`: change data capture with DBLog incremental snapshots.

mod config;
mod redact;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cdc",
    version,
    about = "Change data capture from PostgreSQL with DBLog snapshots"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream changes into the sink until SIGINT/SIGTERM.
    Run {
        #[arg(long, short, default_value = "cdc.toml")]
        config: PathBuf,
    },
    /// Check the source's setup and print what is wrong, or `ok`.
    Check {
        #[arg(long, short, default_value = "cdc.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { config } => run::run(&config).await,
            Command::Check { config } => run::check(&config).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            // One line: the context chain, passwords masked.
            let message = err
                .chain()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            eprintln!("error: {}", redact::redact(&message));
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CDC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
