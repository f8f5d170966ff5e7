//! `cdc`: change data capture with DBLog incremental snapshots.

mod config;
mod logging;
mod observe;
mod operator;
mod redact;
mod run;
mod run_mongodb;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Rows are built on one thread and freed on another; glibc's allocator
/// spends a quarter of a snapshot's CPU on that (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// Log lines as text or one JSON object each; overrides
        /// `observe.log_format`.
        #[arg(long, value_enum)]
        log_format: Option<config::LogFormat>,
    },
    /// Check the source's setup and print what is wrong, or `ok`.
    Check {
        #[arg(long, short, default_value = "cdc.toml")]
        config: PathBuf,
    },
    /// Start an incremental snapshot of TABLEs, or pause/resume/stop
    /// snapshots, by writing a signal row (as an INSERT would).
    #[command(args_conflicts_with_subcommands = true)]
    Snapshot {
        #[command(subcommand)]
        action: Option<SnapshotCommand>,
        /// Tables to snapshot, e.g. public.orders.
        tables: Vec<String>,
        /// Only rows matching this SQL condition (Debezium's additional-conditions).
        #[arg(long)]
        filter: Option<String>,
        /// Chunk in the order of this NOT NULL column (Debezium's
        /// surrogate-key); a table without a key is otherwise read in ctid
        /// ranges.
        #[arg(long)]
        surrogate_key: Option<String>,
        #[arg(long, short, default_value = "cdc.toml")]
        config: PathBuf,
    },
    /// Snapshot progress per table and the replication lag.
    Status {
        #[arg(long, short, default_value = "cdc.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Stop selecting chunks; progress is kept.
    Pause {
        #[arg(long, short, default_value = "cdc.toml")]
        config: PathBuf,
    },
    /// Continue a paused snapshot.
    Resume {
        #[arg(long, short, default_value = "cdc.toml")]
        config: PathBuf,
    },
    /// Drop TABLEs (all when none are named) from the snapshot queue.
    Stop {
        tables: Vec<String>,
        #[arg(long, short, default_value = "cdc.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = cdc_engine::Telemetry::new(env!("CARGO_PKG_VERSION"));
    let log_format = match &cli.command {
        Command::Run {
            config, log_format, ..
        } => log_format.or_else(|| config::Config::log_format_hint(config)),
        _ => None,
    };
    let log_format = log_format.unwrap_or_default();
    logging::init(log_format, &telemetry);
    // One thread: the engine's work is a pipeline of cheap steps, and
    // handing rows between worker threads cost more than it gained (20%
    // more CPU per event, cargo bench --bench cdc); PostgreSQL gets the
    // other cores. Blocking calls (fsync) go to the blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
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
            Command::Run { config, .. } => run::run(&config, telemetry).await,
            Command::Check { config } => run::check(&config).await,
            Command::Status { config } => operator::status(&config).await,
            Command::Snapshot {
                action,
                tables,
                filter,
                surrogate_key,
                config,
            } => match action {
                None => {
                    let execute = operator::Execute {
                        filter: filter.as_deref(),
                        surrogate_key: surrogate_key.as_deref(),
                    };
                    operator::snapshot(&config, None, &tables, execute).await
                }
                Some(SnapshotCommand::Pause { config }) => {
                    operator::snapshot(
                        &config,
                        Some(operator::SnapshotAction::Pause),
                        &[],
                        Default::default(),
                    )
                    .await
                }
                Some(SnapshotCommand::Resume { config }) => {
                    operator::snapshot(
                        &config,
                        Some(operator::SnapshotAction::Resume),
                        &[],
                        Default::default(),
                    )
                    .await
                }
                Some(SnapshotCommand::Stop { tables, config }) => {
                    operator::snapshot(
                        &config,
                        Some(operator::SnapshotAction::Stop),
                        &tables,
                        Default::default(),
                    )
                    .await
                }
            },
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
            let message = redact::redact(&message);
            if log_format == config::LogFormat::Json {
                // Every line a JSON object, the last one too.
                tracing::error!("{message}");
            } else {
                eprintln!("error: {message}");
            }
            ExitCode::from(2)
        }
    }
}
