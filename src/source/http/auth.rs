//! Bearer tokens from a file (one per line), re-read when the file changes so
//! tokens can be rotated without a restart; a file that becomes unreadable or
//! empty keeps the previous tokens. Tokens are compared in constant time and
//! never logged.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, header};
use tokio_util::sync::CancellationToken;

/// How often the tokens file is checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// A tokens file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum AuthError {
    #[error("failed to read bearer tokens file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bearer tokens file `{}` holds no tokens", path.display())]
    Empty { path: PathBuf },
}

/// The tokens of one version of the file.
type TokenList = Arc<[Box<[u8]>]>;

/// The accepted tokens; cheap to clone.
#[derive(Clone)]
pub(super) struct BearerTokens {
    path: Arc<Path>,
    tokens: Arc<RwLock<TokenList>>,
    /// The file version read at load, so a change before `watch` starts is
    /// not missed.
    loaded: Option<Stamp>,
}

impl std::fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerTokens")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What identifies one version of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    dev: u64,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    // `metadata` follows symlinks: Kubernetes swaps a Secret volume's
    // `..data` link, which gives the file a new inode.
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

fn read_tokens(path: &Path) -> Result<TokenList, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        path: path.to_owned(),
        source,
    })?;
    let tokens: TokenList = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.as_bytes().into())
        .collect();
    if tokens.is_empty() {
        return Err(AuthError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(tokens)
}

impl BearerTokens {
    pub(super) fn load(path: &Path) -> Result<Self, AuthError> {
        let loaded = stamp(path);
        Ok(Self {
            path: Arc::from(path),
            tokens: Arc::new(RwLock::new(read_tokens(path)?)),
            loaded,
        })
    }

    /// Whether the request carries `Authorization: Bearer <accepted token>`.
    pub(super) fn check(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| bearer(v.as_bytes()))
        else {
            return false;
        };
        let tokens = self
            .tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // Compare with every token, without stopping at a match, so timing
        // tells nothing about which token (or how much of one) matched.
        tokens.iter().fold(false, |found, token| {
            found | constant_time_eq(token, presented)
        })
    }

    /// Re-reads the file whenever it changes, until `shutdown`.
    pub(super) async fn watch(self, shutdown: CancellationToken) {
        let mut last = self.loaded.clone();
        let mut warned = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RELOAD_INTERVAL) => {}
            }
            let current = stamp(&self.path);
            if current == last {
                continue;
            }
            match read_tokens(&self.path) {
                Ok(tokens) => {
                    let count = tokens.len();
                    *self
                        .tokens
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = tokens;
                    last = current;
                    warned = false;
                    tracing::info!(path = %self.path.display(), count, "Reloaded bearer tokens.");
                }
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(error = %e, "Keeping the previous bearer tokens.");
                }
                Err(_) => {}
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Equality whose time depends only on the lengths, not on where the inputs
/// differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::AUTHORIZATION, value.parse().unwrap());
        map
    }

    #[test]
    fn accepts_listed_tokens_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            "# rotation: old and new\nold-token\n\n  new-token  \n",
        )
        .unwrap();
        let tokens = BearerTokens::load(&path).unwrap();
        assert!(tokens.check(&headers("Bearer new-token")));
        assert!(tokens.check(&headers("bearer old-token")));
        assert!(!tokens.check(&headers("Bearer new-toke")));
        assert!(!tokens.check(&headers("Bearer new-tokenx")));
        assert!(!tokens.check(&headers("Basic old-token")));
        assert!(!tokens.check(&headers("Bearer # rotation: old and new")));
        assert!(!tokens.check(&HeaderMap::new()));
    }

    #[test]
    fn an_empty_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "\n# none\n").unwrap();
        assert!(matches!(
            BearerTokens::load(&path),
            Err(AuthError::Empty { .. })
        ));
        assert!(matches!(
            BearerTokens::load(&dir.path().join("missing")),
            Err(AuthError::Read { .. })
        ));
    }

    #[tokio::test]
    async fn reloads_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "first\n").unwrap();
        let tokens = BearerTokens::load(&path).unwrap();
        let shutdown = CancellationToken::new();
        let watcher = tokio::spawn(tokens.clone().watch(shutdown.clone()));
        // A new file under the same name, as a rotation writes it.
        std::fs::write(dir.path().join("next"), "second\n").unwrap();
        std::fs::rename(dir.path().join("next"), &path).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !tokens.check(&headers("Bearer second")) {
            assert!(
                std::time::Instant::now() < deadline,
                "tokens were not reloaded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!tokens.check(&headers("Bearer first")));
        shutdown.cancel();
        watcher.await.unwrap();
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"\0"));
    }
}
