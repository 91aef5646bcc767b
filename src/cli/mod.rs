//! The command line: `run`, `check`, `config default`, `audit`, `policy
//! check|explain`, `elasticsearch setup`. Data goes to stdout,
//! logs to stderr; exit codes are 0 ok, 1 runtime failure, 2 bad usage or
//! invalid config.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod audit;
mod check;
mod elasticsearch;
mod logging;
mod policy;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigError};

#[derive(Debug, Parser)]
#[command(
    name = "auditrail",
    version,
    about = "Ships Kubernetes audit events: tail, receive, audit, route, write and forward."
)]
pub struct Cli {
    /// Format of the agent's own logs on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "AUDITRAIL_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info`, `debug`, `auditrail::source=debug`.
    #[arg(long, global = true, default_value = "info", env = "AUDITRAIL_LOG")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent in the foreground (systemd-friendly).
    Run {
        /// Config file; the embedded default config when absent.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Validate a config file and print its routing graph.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Work with config files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Audit raw access records (or legacy `AUDIT:` lines) through a policy into
    /// audit Events, offline. Exit code 1 when some lines could not be audited.
    Audit(audit::AuditArgs),
    /// Check audit policies and explain their decisions.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Prepare the clusters of `elasticsearch` outputs.
    Elasticsearch {
        #[command(subcommand)]
        command: elasticsearch::ElasticsearchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the embedded default config.
    Default,
}

/// An error that means the user must change their input: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Parses arguments, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    logging::init(cli.log_format, &cli.log_level);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(error) => {
            let code = exit_code_for(&error);
            if !is_broken_pipe(&error) {
                eprintln!("{}", render(&error));
            }
            code
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => run::run(config.as_deref()),
        Command::Check { config } => check::check(&config),
        Command::Config {
            command: ConfigCommand::Default,
        } => {
            write_stdout(crate::config::DEFAULT_CONFIG)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(args) => audit::audit(&args),
        Command::Policy { command } => policy::run(&command),
        Command::Elasticsearch { command } => elasticsearch::run(&command),
    }
}

/// Loads the config named on the command line, or the embedded default.
pub fn load_config(path: Option<&std::path::Path>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => Config::load(path),
        None => Config::default_config(),
    }
}

/// Writes command output to stdout. A reader that went away (`| head`) is
/// not an error of ours: see [`exit_code_for`].
pub(crate) fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn exit_code_for(error: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(error) {
        return ExitCode::SUCCESS;
    }
    let usage = error.chain().any(|cause| {
        cause.downcast_ref::<ConfigError>().is_some()
            || cause.downcast_ref::<UsageError>().is_some()
    });
    if usage {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

fn render(error: &anyhow::Error) -> String {
    // Diagnostics render themselves fully; other errors print their chain.
    if let Some(ConfigError::Invalid(diagnostics)) = error.downcast_ref::<ConfigError>() {
        return diagnostics.to_string();
    }
    if let Some(diagnostics) = error.downcast_ref::<crate::config::Diagnostics>() {
        return diagnostics.to_string();
    }
    let mut text = format!("error: {error}");
    for cause in error.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    text
}
