//! The kubeconfig file kube-apiserver's `--audit-webhook-config-file` takes:
//! the current context's cluster gives the URL and CA, its user the client
//! certificate, token or basic credentials. Relative file paths are taken
//! from the kubeconfig's own directory, as client-go does. The YAML parser
//! (serde-saphyr, whose API moves fast) is used only in [`parse`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::output::net::auth::{Auth, Secret};
use crate::output::net::client::ClientSettings;

/// What the output takes from a kubeconfig.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub settings: ClientSettings,
}

/// A kubeconfig that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("failed to read kubeconfig `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `reason` names the line and column but quotes no text: a
    /// kubeconfig holds tokens and keys, which must not reach a log.
    #[error("kubeconfig `{}` is not valid YAML for a kubeconfig: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("kubeconfig `{}`: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Kubeconfig {
    clusters: Option<Vec<Named<Cluster>>>,
    users: Option<Vec<NamedUser>>,
    contexts: Option<Vec<Named<Context>>>,
    #[serde(rename = "current-context")]
    current_context: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "context")]
    item: Option<T>,
}

#[derive(Debug, Deserialize)]
struct NamedUser {
    name: String,
    user: Option<User>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct Cluster {
    server: Option<String>,
    certificate_authority: Option<PathBuf>,
    certificate_authority_data: Option<String>,
    insecure_skip_tls_verify: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct User {
    client_certificate: Option<PathBuf>,
    client_certificate_data: Option<String>,
    client_key: Option<PathBuf>,
    client_key_data: Option<String>,
    token: Option<Secret>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
    username: Option<String>,
    password: Option<Secret>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Context {
    cluster: Option<String>,
    user: Option<String>,
}

/// Parses the YAML text of a kubeconfig: the one place serde-saphyr is used.
fn parse(text: &str) -> Result<Kubeconfig, serde_saphyr::Error> {
    serde_saphyr::from_str(text)
}

/// A YAML error's message and location, without the lines of the file that
/// serde-saphyr quotes around it.
fn without_snippet(error: &serde_saphyr::Error) -> String {
    let mut inner = error;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    // One line: anything after the first is quoted text.
    inner
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Reads a kubeconfig file and resolves its current context.
pub fn load(path: &Path) -> Result<WebhookTarget, KubeconfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| KubeconfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config = parse(&text).map_err(|error| KubeconfigError::Parse {
        path: path.to_owned(),
        reason: without_snippet(&error),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    resolve(config, base).map_err(|message| KubeconfigError::Invalid {
        path: path.to_owned(),
        message,
    })
}

fn resolve(config: Kubeconfig, base: &Path) -> Result<WebhookTarget, String> {
    let contexts = config.contexts.unwrap_or_default();
    let context = match config.current_context.as_deref().filter(|c| !c.is_empty()) {
        Some(name) => contexts
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("current-context `{name}` is not among `contexts`"))?,
        None if contexts.len() == 1 => &contexts[0],
        None => return Err("no `current-context` is set".into()),
    };
    let context = context
        .item
        .as_ref()
        .ok_or("the current context is empty")?;
    let cluster_name = context
        .cluster
        .as_deref()
        .ok_or("the current context names no cluster")?;
    let cluster = config
        .clusters
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.item)
        .ok_or_else(|| format!("cluster `{cluster_name}` is not among `clusters`"))?;
    let url = cluster
        .server
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("cluster `{cluster_name}` has no `server`"))?;
    let file = |p: &Path| -> Result<Vec<u8>, String> {
        let full = base.join(p);
        std::fs::read(&full).map_err(|e| format!("cannot read `{}`: {e}", full.display()))
    };
    let mut settings = ClientSettings {
        insecure_skip_verify: cluster.insecure_skip_tls_verify.unwrap_or(false),
        ..ClientSettings::default()
    };
    settings.ca_pem = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => Some(base64("certificate-authority-data", data)?),
        (None, Some(path)) => Some(file(path)?),
        (None, None) => None,
    };
    let user = match context.user.as_deref().filter(|u| !u.is_empty()) {
        Some(name) => config
            .users
            .unwrap_or_default()
            .into_iter()
            .find(|u| u.name == name)
            .ok_or_else(|| format!("user `{name}` is not among `users`"))?
            .user
            .unwrap_or_default(),
        None => User::default(),
    };
    let cert = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(data), _) => Some(base64("client-certificate-data", data)?),
        (None, Some(path)) => Some(file(path)?),
        (None, None) => None,
    };
    let key = match (&user.client_key_data, &user.client_key) {
        (Some(data), _) => Some(base64("client-key-data", data)?),
        (None, Some(path)) => Some(file(path)?),
        (None, None) => None,
    };
    settings.identity_pem = match (cert, key) {
        (Some(mut cert), Some(key)) => {
            cert.push(b'\n');
            cert.extend_from_slice(&key);
            Some(cert)
        }
        (None, None) => None,
        _ => return Err("a client certificate needs its key and the other way round".into()),
    };
    let token = match (user.token, &user.token_file) {
        (Some(token), _) => Some(token),
        (None, Some(path)) => {
            let text = String::from_utf8(file(path)?).map_err(|_| "the token file is not UTF-8")?;
            Some(Secret(text.trim().to_owned()))
        }
        (None, None) => None,
    };
    settings.auth = match (token, user.username) {
        (Some(token), _) => Auth::Bearer(token),
        (None, Some(name)) => Auth::Basic {
            user: name,
            password: user_password(user.password),
        },
        (None, None) => Auth::None,
    };
    Ok(WebhookTarget { url, settings })
}

fn user_password(password: Option<Secret>) -> Secret {
    password.unwrap_or(Secret(String::new()))
}

/// Standard base64 with padding, as kubeconfig `*-data` fields hold it.
fn base64(field: &str, text: &str) -> Result<Vec<u8>, String> {
    let bad = || format!("`{field}` is not valid base64");
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|b| !b.is_ascii_whitespace()) {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return Err(bad()),
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            #[allow(clippy::cast_possible_truncation)] // Masked to one byte.
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
