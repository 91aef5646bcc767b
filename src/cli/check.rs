//! `auditrail check -c FILE`: validate exactly as startup and reload do, and
//! print the routing graph.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;

pub(super) fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    super::write_stdout(&format!("{}: ok\n{}", path.display(), config.graph()))?;
    Ok(ExitCode::SUCCESS)
}
