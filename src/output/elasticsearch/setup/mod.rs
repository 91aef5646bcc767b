//! `auditrail elasticsearch setup`: installs what an `elasticsearch`
//! output needs on the cluster it points at, with the output's own
//! endpoints, TLS and credentials: a lifecycle policy (ILM on
//! Elasticsearch, ISM on OpenSearch) and the index template suited to the
//! server's flavor and version, which names the policy. Each step reads
//! what is there first and writes only what differs, so a second run
//! changes nothing; each reports one line. A cluster without ILM or ISM
//! (the API answers "no handler") gets the template alone, and the policy
//! step says why it was skipped. The agent's `run` never calls this.

mod assets;
mod compare;
mod server;

use std::fmt;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

pub use assets::{Targets, annotations_type};
pub use server::{Flavor, Server, Version};

use super::ElasticsearchConfig;
use super::index::apply_index_rules;
use crate::output::net::auth::{Auth, with_auth};
use crate::output::net::client::build_client;
use crate::output::net::response::{describe_status, transport_error};

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
    let (template, note) =
        assets::index_template(server, &targets, attach).map_err(SetupFailure::Server)?;
    let what = format!(
        "index template {object_name} ({}{}, {})",
        targets.patterns.join(", "),
        if targets.data_stream {
            ", data stream"
        } else {
            ""
        },
        annotations_type(&template)
    );
    let path = ["_index_template", object_name.as_str()];
    let answer = api.send(Method::GET, &path, &[], None).await?;
    let existing = match answer.status.as_u16() {
        200 => Some(answer.json()["index_templates"][0]["index_template"].clone()),
        404 => None,
        _ => return Err(api.refused(&what, "GET", &path, &answer)),
    };
    let outcome = match existing {
        Some(existing) if compare::contains(&comparable(&existing), &comparable(&template)) => {
            Outcome::Unchanged
        }
        existing => {
            let answer = api.send(Method::PUT, &path, &[], Some(&template)).await?;
            if !answer.status.is_success() {
                return Err(api.refused(&what, "PUT", &path, &answer));
            }
            if existing.is_some() {
                Outcome::Updated
            } else {
                Outcome::Created
            }
        }
    };
    report(match note {
        Some(note) => format!("{what}: {outcome} ({note})"),
        None => format!("{what}: {outcome}"),
    });
    Ok(())
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

/// An API that is not there: "no handler found for uri …" (400),
/// "Incorrect HTTP method" (405), or a 404 that is no error of the API's.
fn api_missing(answer: &Answer) -> bool {
    matches!(answer.status.as_u16(), 400 | 404 | 405) && !answer.json()["error"].is_object()
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
    let what = format!("lifecycle policy {name} (ILM, delete {days} days after creation)");
    if targets.single_index {
        return Ok(skipped(what, single_index_reason(targets)));
    }
    let wanted = assets::ilm_policy(api.server.version, days, targets);
    let path = ["_ilm", "policy", name];
    let answer = api.send(Method::GET, &path, &[], None).await?;
    let existing = match answer.status.as_u16() {
        200 => Some(answer.json()[name]["policy"].clone()),
        _ if api_missing(&answer) => {
            let reason = format!(
                "this cluster has no ILM (index lifecycle management, part of Elasticsearch's \
                 default distribution): GET /{} answered {}",
                path.join("/"),
                answer.reason()
            );
            return Ok(skipped(what, reason));
        }
        404 => None,
        _ => return Err(api.refused(&what, "GET", &path, &answer)),
    };
    let outcome = match existing {
        Some(existing) if compare::contains(&existing, &wanted["policy"]) => Outcome::Unchanged,
        existing => {
            let answer = api.send(Method::PUT, &path, &[], Some(&wanted)).await?;
            if !answer.status.is_success() {
                return Err(api.refused(&what, "PUT", &path, &answer));
            }
            if existing.is_some() {
                Outcome::Updated
            } else {
                Outcome::Created
            }
        }
    };
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
    let answer = api.send(Method::GET, &path, &[], None).await?;
    let existing = match answer.status.as_u16() {
        200 => Some(answer.json()),
        _ if api_missing(&answer) => {
            let reason = format!(
                "this cluster has no ISM (the opensearch-index-management plugin): \
                 GET /{} answered {}",
                path.join("/"),
                answer.reason()
            );
            return Ok(skipped(what, reason));
        }
        404 => None,
        _ => return Err(api.refused(&what, "GET", &path, &answer)),
    };
    let (query, outcome) = match &existing {
        Some(existing) if compare::contains(&existing["policy"], &wanted["policy"]) => {
            return Ok((
                format!("{what}: {}", Outcome::Unchanged),
                Outcome::Unchanged,
            ));
        }
        Some(existing) => (
            vec![
                ("if_seq_no", existing["_seq_no"].to_string()),
                ("if_primary_term", existing["_primary_term"].to_string()),
            ],
            Outcome::Updated,
        ),
        None => (Vec::new(), Outcome::Created),
    };
    let answer = api.send(Method::PUT, &path, &query, Some(&wanted)).await?;
    if !answer.status.is_success() {
        return Err(api.refused(&what, "PUT", &path, &answer));
    }
    Ok((format!("{what}: {outcome}"), outcome))
}

fn skipped(what: String, reason: String) -> (String, Outcome) {
    let outcome = Outcome::Skipped(reason);
    (format!("{what}: {outcome}"), outcome)
}

/// One endpoint of the output, with its client and credentials, and the
/// server found there.
struct Api {
    client: reqwest::Client,
    auth: Auth,
    /// As the config writes it, for the report.
    endpoint: String,
    base: Url,
    server: Server,
}

/// A server's answer.
struct Answer {
    status: StatusCode,
    product: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `HTTP 400 Bad Request: illegal_argument_exception: …`.
    fn reason(&self) -> String {
        describe_status(self.status, &self.body)
    }
}

impl Api {
    /// The first endpoint that answers, and what server it is.
    async fn connect(name: &str, config: &ElasticsearchConfig) -> Result<Self, SetupFailure> {
        let settings = config
            .client_settings()
            .map_err(|e| SetupFailure::Server(crate::error_chain(&e)))?;
        let client = build_client(&settings, name)
            .map_err(|e| SetupFailure::Server(crate::error_chain(&e)))?;
        let mut failures = Vec::new();
        for endpoint in &config.endpoints {
            let base = crate::output::net::check_url(endpoint).map_err(SetupFailure::Config)?;
            let mut api = Self {
                client: client.clone(),
                auth: settings.auth.clone(),
                endpoint: endpoint.clone(),
                base,
                server: Server {
                    flavor: Flavor::Elasticsearch,
                    version: Version::new(0, 0, 0),
                },
            };
            match api.detect().await {
                Ok(server) => {
                    api.server = server;
                    return Ok(api);
                }
                Err(Detect::Unreachable(reason)) => failures.push(format!("{endpoint}: {reason}")),
                Err(Detect::Failed(reason)) => {
                    return Err(SetupFailure::Server(format!("{endpoint}: {reason}")));
                }
            }
        }
        Err(SetupFailure::Server(format!(
            "no endpoint answered: {}",
            failures.join("; ")
        )))
    }

    /// Flavor and version from node info, else from `GET /`.
    async fn detect(&self) -> Result<Server, Detect> {
        let path = ["_nodes", "_local", "none"];
        let info = self
            .send(Method::GET, &path, &[], None)
            .await
            .map_err(|e| Detect::Unreachable(e.to_string()))?;
        if info.status.is_success() {
            return server::from_node_info(&info.json(), info.product.as_deref())
                .map_err(|e| Detect::Failed(format!("GET /_nodes/_local/none: {e}")));
        }
        let root = self
            .send(Method::GET, &[], &[], None)
            .await
            .map_err(|e| Detect::Unreachable(e.to_string()))?;
        if root.status.is_success() {
            return server::from_root(&root.json())
                .map_err(|e| Detect::Failed(format!("GET /: {e}")));
        }
        Err(Detect::Failed(format!(
            "cannot tell which server this is: GET /_nodes/_local/none answered {}, GET / answered {}",
            info.reason(),
            root.reason()
        )))
    }

    async fn send(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, SetupFailure> {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut request = with_auth(self.client.request(method.clone(), url), &self.auth);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let fail = |e: &reqwest::Error| {
            SetupFailure::Server(format!(
                "{method} /{}: {}",
                path.join("/"),
                transport_error(e)
            ))
        };
        let response = request.send().await.map_err(|e| fail(&e))?;
        let status = response.status();
        let product = response
            .headers()
            .get(server::PRODUCT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| fail(&e))?.to_vec();
        Ok(Answer {
            status,
            product,
            body,
        })
    }

    /// A step the server refused, with its own reason.
    fn refused(&self, what: &str, method: &str, path: &[&str], answer: &Answer) -> SetupFailure {
        SetupFailure::Server(format!(
            "{what}: {method} {}/{} answered {}",
            self.base.as_str().trim_end_matches('/'),
            path.join("/"),
            answer.reason()
        ))
    }
}

/// Why an endpoint could not be identified: unreachable ones are skipped
/// for the next endpoint; a server that answers but cannot be identified
/// stops setup.
enum Detect {
    Unreachable(String),
    Failed(String),
}
