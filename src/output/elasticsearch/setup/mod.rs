//! `auditrail elasticsearch setup`: installs what an `elasticsearch`
//! output needs on the cluster it points at, with the output's own
//! endpoints, TLS and credentials: a lifecycle policy (ILM on
//! Elasticsearch, ISM on OpenSearch) and the index template suited to the
//! server's flavor and version, which names the policy. Each step reads
//! what is there first and writes only what differs, so a second run
//! changes nothing; each reports one line. A cluster without ILM or ISM
//! (the API answers "no handler") gets the template alone, and the policy
//! step says why it was skipped. The agent's `run` never calls this.

mod api;
mod assets;
mod compare;
mod server;

use std::fmt;

use reqwest::Method;
use serde_json::Value;

pub use assets::{Targets, annotations_type};
pub use server::{Flavor, Server, Version};

use self::api::Api;
use super::ElasticsearchConfig;
use super::index::apply_index_rules;

/// Days an index is kept when `--retention-days` is not given.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// What setup is asked to do besides the output's own settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Indices are deleted this many days after they were created.
    pub retention_days: u32,
}

/// Why setup stopped.
#[derive(Debug, thiserror::Error)]
pub enum SetupFailure {
    /// The output's settings cannot be set up (an `index` with no fixed
    /// prefix): the user must change the config.
    #[error("{0}")]
    Config(String),
    /// A server could not be reached, or refused a step: its own reason.
    #[error("{0}")]
    Server(String),
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    Skipped(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Created => f.write_str("created"),
            Self::Updated => f.write_str("updated"),
            Self::Unchanged => f.write_str("unchanged"),
            Self::Skipped(reason) => write!(f, "skipped: {reason}"),
        }
    }
}

/// Runs setup for the output `name`, calling `report` with one line per
/// step as it is done (so a later failure does not hide what was done).
pub async fn setup(
    name: &str,
    config: &ElasticsearchConfig,
    options: Options,
    report: &mut dyn FnMut(String),
) -> Result<(), SetupFailure> {
    let targets = Targets::of(config).map_err(SetupFailure::Config)?;
    let api = Api::connect(name, config).await?;
    let server = api.server;
    report(format!("{} is {server}", api.endpoint));
    let object_name = {
        let mut text = format!("auditrail-{name}");
        apply_index_rules(&mut text);
        text
    };
    let (policy, outcome) = match server.flavor {
        Flavor::Elasticsearch => ilm_step(&api, &object_name, options, &targets).await?,
        Flavor::OpenSearch => ism_step(&api, &object_name, options, &targets).await?,
    };
    report(policy);
    let attach = match (&outcome, server.flavor) {
        (Outcome::Skipped(_), _) | (_, Flavor::OpenSearch) => None,
        _ => Some(object_name.as_str()),
    };
    report(template_step(&api, &object_name, &targets, attach).await?);
    Ok(())
}

/// The index template: `GET`, then `PUT` when missing or different.
async fn template_step(
    api: &Api,
    name: &str,
    targets: &Targets,
    lifecycle: Option<&str>,
) -> Result<String, SetupFailure> {
    let (template, note) =
        assets::index_template(api.server, targets, lifecycle).map_err(SetupFailure::Server)?;
    let stream = if targets.data_stream {
        ", data stream"
    } else {
        ""
    };
    let what = format!(
        "index template {name} ({}{stream}, {})",
        targets.patterns.join(", "),
        annotations_type(&template)
    );
    let path = ["_index_template", name];
    let answer = api.send(Method::GET, &path, &[], None).await?;
    let found = match answer.status.as_u16() {
        200 => {
            let existing = &answer.json()["index_templates"][0]["index_template"];
            Found::new(compare::contains(
                &comparable(existing),
                &comparable(&template),
            ))
        }
        404 => Found::Missing,
        _ => return Err(api.refused(&what, "GET", &path, &answer)),
    };
    let outcome = write(api, &what, &path, &[], found, &template).await?;
    Ok(match note {
        Some(note) => format!("{what}: {outcome} ({note})"),
        None => format!("{what}: {outcome}"),
    })
}

/// What a `GET` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Missing,
    Same,
    Different,
}

impl Found {
    fn new(same: bool) -> Self {
        if same { Self::Same } else { Self::Different }
    }
}

/// `PUT`s `body` unless what is there is the same already.
async fn write(
    api: &Api,
    what: &str,
    path: &[&str],
    query: &[(&str, String)],
    found: Found,
    body: &Value,
) -> Result<Outcome, SetupFailure> {
    if found == Found::Same {
        return Ok(Outcome::Unchanged);
    }
    let answer = api.send(Method::PUT, path, query, Some(body)).await?;
    if !answer.status.is_success() {
        return Err(api.refused(what, "PUT", path, &answer));
    }
    Ok(match found {
        Found::Missing => Outcome::Created,
        _ => Outcome::Updated,
    })
}

/// A template with its settings as dotted names, as [`compare`] wants.
fn comparable(template: &Value) -> Value {
    let mut template = template.clone();
    let settings = &mut template["template"]["settings"];
    if !settings.is_null() {
        *settings = compare::flat_settings(settings);
    }
    template
}

/// A lifecycle policy's `GET`: its answer when there is one, `None` when
/// there is none yet, or `Err(reason)` when the cluster has no such API
/// ("no handler found for uri …" (400), "Incorrect HTTP method" (405), or a
/// 404 that is no error of the API's).
async fn get_policy(
    api: &Api,
    what: &str,
    path: &[&str],
    plugin: &str,
) -> Result<Result<Option<Value>, String>, SetupFailure> {
    let answer = api.send(Method::GET, path, &[], None).await?;
    let json = answer.json();
    Ok(match answer.status.as_u16() {
        200 => Ok(Some(json)),
        400 | 404 | 405 if !json["error"].is_object() => Err(format!(
            "this cluster has no {plugin}: GET /{} answered {}",
            path.join("/"),
            answer.reason()
        )),
        404 => Ok(None),
        _ => return Err(api.refused(what, "GET", path, &answer)),
    })
}

/// Why no lifecycle policy goes onto a single index.
fn single_index_reason(targets: &Targets) -> String {
    format!(
        "`index` names the single index `{}`: deleting it would delete every event at once; \
         use a dated name (`...-%Y.%m.%d`) or a data stream",
        targets.patterns[0]
    )
}

/// The ILM policy: `GET`, then `PUT` when missing or different.
async fn ilm_step(
    api: &Api,
    name: &str,
    options: Options,
    targets: &Targets,
) -> Result<(String, Outcome), SetupFailure> {
    let days = options.retention_days;
    // ILM counts a rolled-over index's age from its rollover.
    let since = if targets.data_stream {
        "rollover"
    } else {
        "creation"
    };
    let what = format!("lifecycle policy {name} (ILM, delete {days} days after {since})");
    if targets.single_index {
        return Ok(skipped(what, single_index_reason(targets)));
    }
    let wanted = assets::ilm_policy(api.server.version, days, targets);
    let path = ["_ilm", "policy", name];
    let plugin = "ILM (index lifecycle management, part of Elasticsearch's default distribution)";
    let found = match get_policy(api, &what, &path, plugin).await? {
        Err(reason) => return Ok(skipped(what, reason)),
        Ok(None) => Found::Missing,
        Ok(Some(answer)) => Found::new(compare::contains(
            &answer[name]["policy"],
            &wanted["policy"],
        )),
    };
    let outcome = write(api, &what, &path, &[], found, &wanted).await?;
    Ok((format!("{what}: {outcome}"), outcome))
}

/// The ISM policy: `GET`, then `PUT` when missing, or `PUT` with the
/// sequence number read when different (ISM wants it for an update).
async fn ism_step(
    api: &Api,
    name: &str,
    options: Options,
    targets: &Targets,
) -> Result<(String, Outcome), SetupFailure> {
    let days = options.retention_days;
    let what = format!("lifecycle policy {name} (ISM, delete {days} days after creation)");
    if targets.single_index {
        return Ok(skipped(what, single_index_reason(targets)));
    }
    let wanted = assets::ism_policy(days, targets);
    let path = ["_plugins", "_ism", "policies", name];
    let plugin = "ISM (the opensearch-index-management plugin)";
    let (found, query) = match get_policy(api, &what, &path, plugin).await? {
        Err(reason) => return Ok(skipped(what, reason)),
        Ok(None) => (Found::Missing, Vec::new()),
        Ok(Some(answer)) => (
            Found::new(compare::contains(&answer["policy"], &wanted["policy"])),
            vec![
                ("if_seq_no", answer["_seq_no"].to_string()),
                ("if_primary_term", answer["_primary_term"].to_string()),
            ],
        ),
    };
    let outcome = write(api, &what, &path, &query, found, &wanted).await?;
    Ok((format!("{what}: {outcome}"), outcome))
}

fn skipped(what: String, reason: String) -> (String, Outcome) {
    let outcome = Outcome::Skipped(reason);
    (format!("{what}: {outcome}"), outcome)
}
