//! `auditrail audit --policy P [--format legacy|access_json] [IN] [-o OUT]`: raw
//! access records (or legacy `AUDIT:` lines) to `audit.k8s.io/v1` Events, offline,
//! through the same decoder the sources use.
//!
//! Events go to OUT (default stdout) as JSON lines; each line that could not be
//! audited is reported on stderr as `IN:LINE: reason` (never its content). Exit code
//! 0 when every line was audited, 1 when some were not (the others are still
//! written), 2 for a bad policy or bad usage.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use chrono::Utc;
use clap::{Args, ValueEnum};

use super::UsageError;
use super::policy::load_compiled;
use crate::config::Duration;
use crate::metrics::Metrics;
use crate::source::{DEFAULT_JOIN_TIMEOUT, DecodeSpec, Decoded, InputFormat};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Audit policy file (`audit.k8s.io/v1` Policy, YAML or JSON).
    #[arg(long)]
    pub policy: PathBuf,
    /// Input format.
    #[arg(long, value_enum, default_value_t = AuditFormat::AccessJson)]
    pub format: AuditFormat,
    /// `legacy`: how long a request line waits for its response line, measured
    /// on the log's own clock.
    #[arg(long, default_value_t = DEFAULT_JOIN_TIMEOUT)]
    pub join_timeout: Duration,
    /// Input file; standard input when absent or `-`.
    pub input: Option<PathBuf>,
    /// Output file (created 0600); standard output when absent or `-`.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// kube-apiserver's legacy `AUDIT:` lines (two-line and one-line-per-stage).
    Legacy,
    /// One access record (JSON) per request.
    #[value(name = "access_json")]
    AccessJson,
}

pub(super) fn audit(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let (_, policy) = load_compiled(&args.policy)?;
    let format = match args.format {
        AuditFormat::Legacy => InputFormat::Legacy,
        AuditFormat::AccessJson => InputFormat::AccessJson,
    };
    let spec = DecodeSpec::audited(format, Arc::new(policy), args.join_timeout);
    let mut decoder = spec.build(&Metrics::new().component("audit"));
    let (input_name, input): (String, Box<dyn BufRead>) = match stdio_or(args.input.as_deref()) {
        None => ("<stdin>".to_owned(), Box::new(io::stdin().lock())),
        Some(path) => (
            path.display().to_string(),
            Box::new(BufReader::new(File::open(path).map_err(|e| {
                UsageError(format!(
                    "failed to open input file `{}`: {e}",
                    path.display()
                ))
            })?)),
        ),
    };
    let mut input = input;
    let mut line = Vec::new();
    let read_line = |input: &mut Box<dyn BufRead>, line: &mut Vec<u8>| {
        line.clear();
        input
            .read_until(b'\n', line)
            .with_context(|| format!("failed to read `{input_name}`"))
    };
    // Blank lines are skipped; the first other line tells what the input is.
    let mut number = 0u64;
    let mut read = read_line(&mut input, &mut line)?;
    while read > 0 && line.trim_ascii().is_empty() {
        number += 1;
        read = read_line(&mut input, &mut line)?;
    }
    if let Some(what) = audit_event_kind(&line) {
        return Err(UsageError(format!(
            "{input_name}:{}: the input holds audit {what}, not raw requests: `auditrail audit` \
             makes Events from access records (`--format access_json`) or kube-apiserver's \
             legacy `AUDIT:` lines (`--format legacy`); to apply a policy to existing Events, \
             run them through an `audit_policy` filter",
            number + 1
        ))
        .into());
    }
    let mut out = Writer::open(stdio_or(args.output.as_deref()))?;
    let mut decoded = Vec::new();
    let mut bad = 0u64;
    let mut first = true;
    loop {
        if !first {
            read = read_line(&mut input, &mut line)?;
        }
        first = false;
        if read == 0 {
            break;
        }
        number += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let bytes = Bytes::copy_from_slice(&line);
        if let Err(problem) = decoder.decode(bytes, Utc::now(), &mut decoded) {
            bad += 1;
            eprintln!("{input_name}:{number}: {}", problem.reason);
        }
        if !out.write(&mut decoded)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    decoder.flush_all(&mut decoded);
    if !out.write(&mut decoded)? || !out.flush()? {
        return Ok(ExitCode::SUCCESS);
    }
    if bad > 0 {
        eprintln!("error: {bad} of {number} lines could not be audited");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `Events` or `EventLists` when a line is an `audit.k8s.io` Event (`kind: Event`, or
/// the `auditID` and `stage` only Events have) or EventList, the output of kube-apiserver
/// rather than the raw requests this command reads.
fn audit_event_kind(line: &[u8]) -> Option<&'static str> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let object = value.as_object()?;
    match object.get("kind").and_then(serde_json::Value::as_str) {
        Some("Event") => Some("Events"),
        Some("EventList") => Some("EventLists"),
        _ if object.contains_key("auditID") && object.contains_key("stage") => Some("Events"),
        _ => None,
    }
}

/// `-` means the standard stream.
fn stdio_or(path: Option<&Path>) -> Option<&Path> {
    path.filter(|p| *p != Path::new("-"))
}

/// Where events go; a closed stdout pipe ends the command quietly (exit 0).
struct Writer {
    out: Box<dyn Write>,
    buf: Vec<u8>,
}

impl Writer {
    fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let out: Box<dyn Write> = match path {
            None => Box::new(BufWriter::new(io::stdout().lock())),
            Some(path) => {
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                Box::new(BufWriter::new(options.open(path).map_err(|e| {
                    UsageError(format!(
                        "failed to create output file `{}`: {e}",
                        path.display()
                    ))
                })?))
            }
        };
        Ok(Self {
            out,
            buf: Vec::new(),
        })
    }

    /// Writes and drains `decoded`; `Ok(false)` when the reader went away.
    fn write(&mut self, decoded: &mut Vec<Decoded>) -> anyhow::Result<bool> {
        self.buf.clear();
        for d in decoded.drain(..) {
            d.record.write_json(&mut self.buf);
            self.buf.push(b'\n');
        }
        let result = self.out.write_all(&self.buf);
        self.settle(result)
    }

    fn flush(&mut self) -> anyhow::Result<bool> {
        let result = self.out.flush();
        self.settle(result)
    }

    fn settle(&self, result: io::Result<()>) -> anyhow::Result<bool> {
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("failed to write the audit events"),
        }
    }
}
