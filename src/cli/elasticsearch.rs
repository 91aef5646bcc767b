//! `auditrail elasticsearch setup -c FILE [--output NAME]`: installs the
//! index template and lifecycle policy of the config's `elasticsearch`
//! outputs on their clusters (see `output::elasticsearch::setup`). One line
//! per step on stdout; errors on stderr. Exit codes: 0 every step done (or
//! skipped, with the reason), 1 a cluster could not be reached or refused a
//! step, 2 an invalid config, no such output, or an `index` no pattern fits.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::UsageError;
use crate::config::Config;
use crate::output::OutputConfig;
use crate::output::elasticsearch::setup::{DEFAULT_RETENTION_DAYS, Options, SetupFailure, setup};

#[derive(Debug, Subcommand)]
pub enum ElasticsearchCommand {
    /// Install the index template and lifecycle policy (ILM on
    /// Elasticsearch, ISM on OpenSearch) that `elasticsearch` outputs need,
    /// on the clusters they point at. Idempotent: a second run changes
    /// nothing. Exit codes: 0 done, 1 a cluster failed or refused, 2 bad
    /// config or output name.
    Setup(SetupArgs),
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The agent's config file.
    #[arg(short, long)]
    config: PathBuf,
    /// Only the `elasticsearch` output of this name (default: all of them).
    #[arg(long)]
    output: Option<String>,
    /// Delete indices (a data stream's backing indices) this many days
    /// after they were created.
    #[arg(long, default_value_t = DEFAULT_RETENTION_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    retention_days: u32,
}

pub(super) fn run(command: &ElasticsearchCommand) -> anyhow::Result<ExitCode> {
    let ElasticsearchCommand::Setup(args) = command;
    let config = Config::load(&args.config)?;
    let outputs: Vec<_> = config
        .outputs
        .iter()
        .filter_map(|spec| match &spec.config {
            OutputConfig::Elasticsearch(es) => Some((spec.name.as_str(), es)),
            _ => None,
        })
        .filter(|(name, _)| args.output.as_deref().is_none_or(|wanted| wanted == *name))
        .collect();
    if outputs.is_empty() {
        let file = args.config.display();
        return Err(UsageError(match &args.output {
            Some(name) => format!("{file} has no `elasticsearch` output named `{name}`"),
            None => format!("{file} has no `elasticsearch` output"),
        })
        .into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let options = Options {
        retention_days: args.retention_days,
    };
    let mut worst = 0u8;
    for (name, es) in outputs {
        let mut report = |line: String| {
            let _ = super::write_stdout(&format!("{name}: {line}\n"));
        };
        match runtime.block_on(setup(name, es, options, &mut report)) {
            Ok(()) => {}
            Err(SetupFailure::Config(message)) => {
                eprintln!("error: output `{name}`: {message}");
                worst = worst.max(2);
            }
            Err(SetupFailure::Server(message)) => {
                eprintln!("error: output `{name}`: {message}");
                worst = worst.max(1);
            }
        }
    }
    Ok(ExitCode::from(worst))
}
