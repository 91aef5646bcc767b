//! HTTP plumbing the network outputs share: TLS and auth settings, the
//! reqwest client (rustls, short idle pool), gzip request bodies (reqwest
//! does not compress requests), `Retry-After`, and how a failed request is
//! classified for the driver.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::batch::OutputError;

/// Idle pooled connections are closed after this, below the keep-alive
/// windows of common proxies and load balancers (nginx 75 s, ALB 60 s), so a
/// request never races a server closing an idle connection.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A string that never shows in logs or `Debug` output.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// `tls = { ... }` of a network output.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Skip server certificate verification. Dangerous; logged loudly.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `auth = { ... }`: one of basic (`user` + `password`), bearer
/// (`bearer_token` or `bearer_token_file`) or Elasticsearch `api_key` (the
/// encoded form Elasticsearch returns).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub bearer_token: Option<Secret>,
    /// A file holding the bearer token (read at start).
    pub bearer_token_file: Option<PathBuf>,
    pub api_key: Option<Secret>,
}

/// Credentials and certificates ready for a client.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    pub ca_pem: Option<Vec<u8>>,
    /// Certificate chain followed by its key, both PEM.
    pub identity_pem: Option<Vec<u8>>,
    pub insecure_skip_verify: bool,
    pub auth: Auth,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

/// How requests authenticate.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        user: String,
        password: Secret,
    },
    Bearer(Secret),
    ApiKey(Secret),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::Basic { .. } => "Basic",
            Auth::Bearer(_) => "Bearer",
            Auth::ApiKey(_) => "ApiKey",
        })
    }
}

/// A setting that could not be turned into a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("failed to read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("failed to set up the HTTP client")]
    Build(#[source] reqwest::Error),
}

pub fn read_file(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Read {
        path: path.to_owned(),
        source,
    })
}

impl TlsConfig {
    /// Loads the files into `settings`.
    pub fn apply(&self, settings: &mut ClientSettings) -> Result<(), ClientError> {
        if let Some(ca) = &self.ca_file {
            settings.ca_pem = Some(read_file(ca)?);
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read_file(cert)?;
                pem.push(b'\n');
                pem.extend_from_slice(&read_file(key)?);
                settings.identity_pem = Some(pem);
            }
            (None, None) => {}
            _ => {
                return Err(ClientError::Invalid(
                    "`tls.cert_file` and `tls.key_file` go together".into(),
                ));
            }
        }
        settings.insecure_skip_verify |= self.insecure_skip_verify;
        Ok(())
    }
}

impl AuthConfig {
    /// The one auth method configured.
    pub fn resolve(&self) -> Result<Auth, ClientError> {
        let mut methods = Vec::new();
        if let Some(user) = &self.user {
            let password = self.password.clone().unwrap_or(Secret(String::new()));
            methods.push(Auth::Basic {
                user: user.clone(),
                password,
            });
        } else if self.password.is_some() {
            return Err(ClientError::Invalid(
                "`auth.password` needs `auth.user`".into(),
            ));
        }
        if let Some(token) = &self.bearer_token {
            methods.push(Auth::Bearer(token.clone()));
        }
        if let Some(path) = &self.bearer_token_file {
            let text = String::from_utf8(read_file(path)?)
                .map_err(|_| ClientError::Invalid(format!("`{}` is not UTF-8", path.display())))?;
            methods.push(Auth::Bearer(Secret(text.trim().to_owned())));
        }
        if let Some(key) = &self.api_key {
            methods.push(Auth::ApiKey(key.clone()));
        }
        match methods.len() {
            0 => Ok(Auth::None),
            1 => Ok(methods.remove(0)),
            _ => Err(ClientError::Invalid(
                "`auth` takes one method: `user`/`password`, `bearer_token`, `bearer_token_file` or `api_key`".into(),
            )),
        }
    }
}

/// Installs the rustls crypto provider once, so a second provider somewhere
/// in the dependency graph can never make the first handshake panic.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means a provider is installed already, which is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// Builds the pooled client; every request carries the configured headers
/// and bearer or API-key auth.
pub fn build_client(
    settings: &ClientSettings,
    component: &str,
) -> Result<reqwest::Client, ClientError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("auditrail/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &settings.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| {
            ClientError::Invalid("the CA file holds no valid PEM certificate".into())
        })?;
        if certs.is_empty() {
            return Err(ClientError::Invalid(
                "the CA file holds no certificate".into(),
            ));
        }
        builder = builder.tls_certs_only(certs);
    }
    if let Some(pem) = &settings.identity_pem {
        let identity = reqwest::Identity::from_pem(pem).map_err(|_| {
            ClientError::Invalid("the client certificate or key is not valid PEM".into())
        })?;
        builder = builder.identity(identity);
    }
    if settings.insecure_skip_verify {
        tracing::warn!(
            output = component,
            "TLS certificate verification is OFF for this output: anyone on the path can read and change its traffic."
        );
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &settings.headers {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|_| ClientError::Invalid(format!("invalid header name `{name}`")))?;
        let value = HeaderValue::try_from(value.as_str())
            .map_err(|_| ClientError::Invalid(format!("invalid value for header `{name}`")))?;
        headers.insert(name, value);
    }
    let authorization = match &settings.auth {
        Auth::None | Auth::Basic { .. } => None,
        Auth::Bearer(token) => Some(format!("Bearer {}", token.0)),
        Auth::ApiKey(key) => Some(format!("ApiKey {}", key.0)),
    };
    if let Some(text) = authorization {
        let mut value = HeaderValue::try_from(text).map_err(|_| {
            ClientError::Invalid("the token holds characters a header cannot".into())
        })?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    builder
        .default_headers(headers)
        .build()
        .map_err(ClientError::Build)
}

/// Adds basic auth, when configured, to a request.
pub fn with_auth(request: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
    match auth {
        Auth::Basic { user, password } => request.basic_auth(user, Some(&password.0)),
        _ => request,
    }
}

/// `compress = "gzip"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

/// Bodies at least this large are compressed off the async threads.
const COMPRESS_INLINE_MAX: usize = 64 * 1024;

/// Gzips a request body (reqwest only decompresses responses).
pub async fn gzip(body: Vec<u8>, level: u32) -> Result<Vec<u8>, OutputError> {
    if body.len() < COMPRESS_INLINE_MAX {
        return Ok(gzip_now(&body, level));
    }
    tokio::task::spawn_blocking(move || gzip_now(&body, level))
        .await
        .map_err(|_| OutputError::Retry {
            reason: "compressing the request body was interrupted".into(),
            retry_after: None,
        })
}

fn gzip_now(body: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::new(level.min(9)),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// A transport failure (refused, reset, timeout, TLS): always worth a retry.
pub fn transport_error(error: &reqwest::Error) -> OutputError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    // reqwest's messages carry the URL but never the body or credentials.
    OutputError::Retry {
        reason: format!("{kind}: {}", crate::error_chain(error)),
        retry_after: None,
    }
}

/// Classifies a non-2xx answer: 413 splits, 408/429/5xx retry, other 4xx
/// reject (dead-letter).
pub fn status_error(status: reqwest::StatusCode, headers: &HeaderMap, body: &[u8]) -> OutputError {
    let reason = describe_status(status, body);
    match status.as_u16() {
        413 => OutputError::TooLarge,
        408 | 429 | 500..=599 => OutputError::Retry {
            reason,
            retry_after: retry_after(headers),
        },
        _ => OutputError::Rejected { reason },
    }
}

/// `HTTP 400 Bad Request: <first 300 bytes of the answer>`.
pub fn describe_status(status: reqwest::StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = chrono::Utc::now() + chrono::Duration::seconds(120);
        let date = later.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        headers.insert("retry-after", HeaderValue::try_from(date).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(110) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn statuses_are_classified_like_kube_apiserver_plus_dead_letters() {
        let headers = HeaderMap::new();
        let status = |code| reqwest::StatusCode::from_u16(code).unwrap();
        assert_eq!(
            status_error(status(413), &headers, b""),
            OutputError::TooLarge
        );
        for code in [408, 429, 500, 502, 503] {
            assert!(
                matches!(
                    status_error(status(code), &headers, b""),
                    OutputError::Retry { .. }
                ),
                "{code}"
            );
        }
        for code in [400, 401, 404, 422] {
            assert!(
                matches!(
                    status_error(status(code), &headers, b"nope"),
                    OutputError::Rejected { .. }
                ),
                "{code}"
            );
        }
    }

    #[test]
    fn auth_takes_exactly_one_method_and_hides_secrets() {
        let both = AuthConfig {
            user: Some("u".into()),
            password: Some(Secret("hunter2".into())),
            bearer_token: Some(Secret("t".into())),
            ..AuthConfig::default()
        };
        assert!(both.resolve().is_err());
        assert!(!format!("{both:?}").contains("hunter2"));
        let basic = AuthConfig {
            user: Some("u".into()),
            password: Some(Secret("hunter2".into())),
            ..AuthConfig::default()
        };
        assert!(matches!(basic.resolve().unwrap(), Auth::Basic { .. }));
    }

    #[test]
    fn gzip_bodies_decompress_to_the_original() {
        use std::io::Read;
        let body = b"{\"a\":1}\n".repeat(1000);
        let packed = gzip_now(&body, 1);
        assert!(packed.len() < body.len() / 4);
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&packed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
