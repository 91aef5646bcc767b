//! The HTTP client the network outputs share: TLS settings, the reqwest
//! client (rustls, short idle pool, default headers with bearer or API-key
//! auth) and gzip request bodies (reqwest does not compress requests).

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use super::SetupError;
use super::auth::Auth;
use crate::batch::OutputError;

/// Idle pooled connections are closed after this, below the keep-alive
/// windows of common proxies and load balancers (nginx 75 s, ALB 60 s), so a
/// request never races a server closing an idle connection.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

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

pub fn read_file(path: &Path) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|source| SetupError::Read {
        path: path.to_owned(),
        source,
    })
}

impl TlsConfig {
    /// Loads the files into `settings`.
    pub fn apply(&self, settings: &mut ClientSettings) -> Result<(), SetupError> {
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
                return Err(SetupError::Invalid(
                    "`tls.cert_file` and `tls.key_file` go together".into(),
                ));
            }
        }
        settings.insecure_skip_verify |= self.insecure_skip_verify;
        Ok(())
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

/// What a client is built from, parsed and checked: everything that can
/// be wrong in the files and settings, found without contacting anyone
/// (`auditrail check` runs this too).
pub struct Prepared {
    certs: Option<Vec<reqwest::Certificate>>,
    identity: Option<reqwest::Identity>,
    headers: HeaderMap,
}

impl Prepared {
    pub fn new(settings: &ClientSettings) -> Result<Self, SetupError> {
        install_crypto_provider();
        let certs = match &settings.ca_pem {
            Some(pem) => {
                let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| {
                    SetupError::Invalid("the CA file holds no valid PEM certificate".into())
                })?;
                if certs.is_empty() {
                    return Err(SetupError::Invalid(
                        "the CA file holds no certificate".into(),
                    ));
                }
                Some(certs)
            }
            None => None,
        };
        let identity = match &settings.identity_pem {
            Some(pem) => Some(reqwest::Identity::from_pem(pem).map_err(|_| {
                SetupError::Invalid("the client certificate or key is not valid PEM".into())
            })?),
            None => None,
        };
        Ok(Self {
            certs,
            identity,
            headers: default_headers(settings)?,
        })
    }
}

/// Builds the pooled client; every request carries the configured headers
/// and bearer or API-key auth.
pub fn build_client(
    settings: &ClientSettings,
    component: &str,
) -> Result<reqwest::Client, SetupError> {
    let prepared = Prepared::new(settings)?;
    let mut builder = reqwest::Client::builder()
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("auditrail/", env!("CARGO_PKG_VERSION")));
    if let Some(certs) = prepared.certs {
        builder = builder.tls_certs_only(certs);
    }
    if let Some(identity) = prepared.identity {
        builder = builder.identity(identity);
    }
    if settings.insecure_skip_verify {
        tracing::warn!(
            output = component,
            "TLS certificate verification is OFF for this output: anyone on the path can read and change its traffic."
        );
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder
        .default_headers(prepared.headers)
        .build()
        .map_err(SetupError::Build)
}

/// The configured headers and the bearer or API-key authorization.
fn default_headers(settings: &ClientSettings) -> Result<HeaderMap, SetupError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &settings.headers {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|_| SetupError::Invalid(format!("invalid header name `{name}`")))?;
        let value = HeaderValue::try_from(value.as_str())
            .map_err(|_| SetupError::Invalid(format!("invalid value for header `{name}`")))?;
        headers.insert(name, value);
    }
    let authorization = match &settings.auth {
        Auth::None | Auth::Basic { .. } => None,
        Auth::Bearer(token) => Some(format!("Bearer {}", token.0)),
        Auth::ApiKey(key) => Some(format!("ApiKey {}", key.0)),
    };
    if let Some(text) = authorization {
        let mut value = HeaderValue::try_from(text).map_err(|_| {
            SetupError::Invalid("the token holds characters a header cannot".into())
        })?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(headers)
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
pub async fn gzip(body: bytes::Bytes, level: u32) -> Result<Vec<u8>, OutputError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
