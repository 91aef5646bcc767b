//! `auditrail check -c FILE`: validate exactly as startup and reload do, and
//! print the routing graph.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, Diagnostic};
use crate::source::SourceConfig;

pub(super) fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    for warning in warnings(&config) {
        eprintln!("{}", warning.render_warning(&config.file).trim_end());
    }
    super::write_stdout(&format!("{}: ok\n{}", path.display(), config.graph()))?;
    Ok(ExitCode::SUCCESS)
}

/// What is valid but likely wrong on this host: tail globs that match no
/// file (a wrong path would otherwise ship nothing, silently).
fn warnings(config: &Config) -> Vec<Diagnostic> {
    config
        .sources
        .iter()
        .filter_map(|source| match &source.config {
            SourceConfig::Tail(tail) => Some(tail.unmatched_globs()),
            _ => None,
        })
        .flatten()
        .collect()
}
