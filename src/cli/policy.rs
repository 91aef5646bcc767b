//! `auditrail policy check P` (validate a policy exactly as kube-apiserver loads it)
//! and `auditrail policy explain --policy P ...` (which rule decides a request, with
//! what level, omitted stages and managed-fields stripping).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::UsageError;
use crate::audit::{CompiledPolicy, Policy, PolicyError, RequestAttributes, UserAttributes};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file: prints `ok`, or every problem with its rule index and
    /// field (exit code 2).
    Check {
        /// Policy file (`audit.k8s.io/v1` Policy, YAML or JSON).
        policy: PathBuf,
    },
    /// Show which rule matches a request, its level, the omitted stages and whether
    /// managed fields are omitted.
    Explain(Box<ExplainArgs>),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// The authenticated user name.
    #[arg(long)]
    pub user: String,
    /// A group of the user (repeat for several).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// The Kubernetes verb: get, list, watch, create, update, patch, delete,
    /// deletecollection, ... (for `--path`: the lower-case HTTP method).
    #[arg(long)]
    pub verb: String,
    /// API group of the resource; the core group when absent.
    #[arg(long, default_value = "", conflicts_with = "path")]
    pub api_group: String,
    /// Resource (plural, e.g. `pods`); one of `--resource` and `--path` is needed.
    #[arg(long, conflicts_with = "path")]
    pub resource: Option<String>,
    /// Subresource, e.g. `log` or `status`.
    #[arg(long, default_value = "", conflicts_with = "path")]
    pub subresource: String,
    /// Namespace; cluster-scoped when absent.
    #[arg(long, default_value = "", conflicts_with = "path")]
    pub namespace: String,
    /// Object name.
    #[arg(long, default_value = "", conflicts_with = "path")]
    pub name: String,
    /// URL path of a non-resource request, e.g. `/healthz`.
    #[arg(long)]
    pub path: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExplainOutput::Text)]
    pub output: ExplainOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainOutput {
    Text,
    /// `{"rule": <index or null>, "level": "...", "omit_stages": [...],
    /// "omit_managed_fields": bool}`
    Json,
}

pub(super) fn run(command: &PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Check { policy } => Ok(check(policy)),
        PolicyCommand::Explain(args) => explain(args),
    }
}

fn check(path: &Path) -> ExitCode {
    match load_compiled(path) {
        Ok((policy, _)) => {
            let rules = policy.rules.as_ref().map_or(0, Vec::len);
            match super::write_stdout(&format!("{}: ok ({rules} rules)\n", path.display())) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => ExitCode::from(1),
                _ => ExitCode::SUCCESS,
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// Loads, validates and compiles a policy file; errors are usage errors (exit 2),
/// rendered with every field error (or cause) on its own line.
pub(super) fn load_compiled(path: &Path) -> Result<(Policy, CompiledPolicy), UsageError> {
    let policy = Policy::load(path).map_err(|e| UsageError(render_policy_error(&e)))?;
    let compiled = CompiledPolicy::new(&policy).map_err(|e| UsageError(render_policy_error(&e)))?;
    Ok((policy, compiled))
}

fn render_policy_error(error: &PolicyError) -> String {
    if let PolicyError::Invalid { origin, errors } = error {
        let mut text = format!("policy `{origin}` is invalid");
        for field_error in errors {
            text.push_str(&format!("\n  {field_error}"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(&format!("\n  caused by: {inner}"));
        cause = inner.source();
    }
    text
}

/// The request must be named: a resource (`--resource`) or a URL path (`--path`).
fn check_request_flags(args: &ExplainArgs) -> Result<(), UsageError> {
    if args.resource.is_none() && args.path.is_none() {
        return Err(UsageError(
            "`policy explain` needs the request: `--resource R` (with `--api-group`, \
             `--subresource`, `--namespace`, `--name` as needed) for a resource request, \
             or `--path URL` (e.g. `--path /healthz`) for a non-resource request"
                .to_owned(),
        ));
    }
    check_verb(&args.verb, args.path.is_some())
}

/// Policies match Kubernetes verbs, case-sensitively: an HTTP method such as `GET`
/// would never match a rule, so it is refused with the verb it becomes.
fn check_verb(verb: &str, non_resource: bool) -> Result<(), UsageError> {
    let lower = verb.to_ascii_lowercase();
    let verbs = match verb {
        "GET" | "HEAD" => {
            "`get`, `list` or `watch` (one object, a collection, or `?watch=true`)".to_owned()
        }
        "POST" => "`create`".to_owned(),
        "PUT" => "`update`".to_owned(),
        "PATCH" => "`patch`".to_owned(),
        "DELETE" => "`delete` or `deletecollection` (one object or a collection)".to_owned(),
        "OPTIONS" | "CONNECT" | "TRACE" => format!("`{lower}`"),
        _ => return Ok(()),
    };
    Err(UsageError(if non_resource {
        format!(
            "`--verb {verb}` is an HTTP method; for a non-resource request (`--path`) the \
             verb is the lower-case method: `--verb {lower}`"
        )
    } else {
        format!(
            "`--verb {verb}` is an HTTP method, and policies match Kubernetes verbs: \
             for {verb} that is {verbs}"
        )
    }))
}

fn explain(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    check_request_flags(args)?;
    let (policy, compiled) = load_compiled(&args.policy)?;
    let user = UserAttributes {
        name: &args.user,
        groups: &args.groups,
    };
    let attributes = match &args.path {
        Some(path) => RequestAttributes {
            user: Some(user),
            verb: &args.verb,
            is_resource_request: false,
            path,
            ..RequestAttributes::default()
        },
        None => RequestAttributes {
            user: Some(user),
            verb: &args.verb,
            is_resource_request: true,
            namespace: &args.namespace,
            api_group: &args.api_group,
            resource: args.resource.as_deref().unwrap_or(""),
            subresource: &args.subresource,
            name: &args.name,
            ..RequestAttributes::default()
        },
    };
    let decision = compiled.evaluate(&attributes);
    let stages: Vec<&str> = decision.omit_stages.iter().map(|s| s.as_str()).collect();
    match args.output {
        ExplainOutput::Json => {
            let out = json!({
                "rule": decision.rule,
                "level": decision.level.as_str(),
                "omit_stages": stages,
                "omit_managed_fields": decision.omit_managed_fields,
            });
            super::write_stdout(&format!("{out}\n"))?;
        }
        ExplainOutput::Text => {
            let rules = policy.rules.as_deref().unwrap_or(&[]);
            let mut text = match decision.rule.and_then(|i| Some((i, rules.get(i)?))) {
                Some((index, rule)) => {
                    format!("rule: {index}\n  {}\n", serde_json::to_string(rule)?)
                }
                None => "rule: none (no rule matches; the level is None)\n".to_owned(),
            };
            let stages = if stages.is_empty() {
                "(none)".to_owned()
            } else {
                stages.join(", ")
            };
            text.push_str(&format!(
                "level: {}\nomitStages: {stages}\nomitManagedFields: {}\n",
                decision.level, decision.omit_managed_fields
            ));
            super::write_stdout(&text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
