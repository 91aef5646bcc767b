//! The HTTP side of setup: the output's own client (TLS, credentials,
//! headers from `crate::output::net`), the first endpoint that answers, and
//! which server it is.

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::SetupFailure;
use super::server::{self, Server};
use crate::output::elasticsearch::ElasticsearchConfig;
use crate::output::net::auth::{Auth, with_auth};
use crate::output::net::client::build_client;
use crate::output::net::response::{describe_status, transport_error};

/// One endpoint of the output, with its client and credentials, and the
/// server found there.
pub(super) struct Api {
    link: Link,
    /// As the config writes it, for the report.
    pub(super) endpoint: String,
    pub(super) server: Server,
}

/// The client, credentials and base URL requests go out with.
struct Link {
    client: reqwest::Client,
    auth: Auth,
    base: Url,
}

/// A server's answer.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    product: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `HTTP 400 Bad Request: illegal_argument_exception: …`.
    pub(super) fn reason(&self) -> String {
        describe_status(self.status, &self.body)
    }
}

impl Api {
    /// The first endpoint that answers, and what server it is.
    pub(super) async fn connect(
        name: &str,
        config: &ElasticsearchConfig,
    ) -> Result<Self, SetupFailure> {
        let settings = config
            .client_settings()
            .map_err(|e| SetupFailure::Server(crate::error_chain(&e)))?;
        let client = build_client(&settings, name)
            .map_err(|e| SetupFailure::Server(crate::error_chain(&e)))?;
        let mut failures = Vec::new();
        for endpoint in &config.endpoints {
            let base = crate::output::net::check_url(endpoint).map_err(SetupFailure::Config)?;
            let link = Link {
                client: client.clone(),
                auth: settings.auth.clone(),
                base,
            };
            match link.detect().await {
                Ok(server) => {
                    return Ok(Self {
                        link,
                        endpoint: endpoint.clone(),
                        server,
                    });
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

    pub(super) async fn send(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, SetupFailure> {
        self.link.send(method, path, query, body).await
    }

    /// A step the server refused, with its own reason.
    pub(super) fn refused(
        &self,
        what: &str,
        method: &str,
        path: &[&str],
        answer: &Answer,
    ) -> SetupFailure {
        SetupFailure::Server(format!(
            "{what}: {method} {}/{} answered {}",
            self.link.base.as_str().trim_end_matches('/'),
            path.join("/"),
            answer.reason()
        ))
    }
}

impl Link {
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
}

/// Why an endpoint could not be identified: unreachable ones are skipped
/// for the next endpoint; a server that answers but cannot be identified
/// stops setup.
enum Detect {
    Unreachable(String),
    Failed(String),
}
