//! `auth = { ... }` of a network output: basic, bearer or Elasticsearch API
//! key credentials, given inline or in files. Credential files are read when
//! the config is loaded (so `auditrail check` and a reload see a missing or
//! unreadable file as a config error at its key) and read again on every
//! reload, so a rotated secret takes effect on SIGHUP. They suit systemd's
//! `LoadCredential=` (`$CREDENTIALS_DIRECTORY/<name>`) and Kubernetes secret
//! volumes.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::SetupError;
use crate::config::Diagnostic;

/// A string that never shows in logs or `Debug` output.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// `auth = { ... }`: one of basic (`user` + `password` or `password_file`),
/// bearer (`bearer_token` or `bearer_token_file`) or Elasticsearch API key
/// (`api_key` or `api_key_file`, the encoded form Elasticsearch returns).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// A file holding the password (a trailing newline is ignored).
    pub password_file: Option<Spanned<PathBuf>>,
    pub bearer_token: Option<Secret>,
    /// A file holding the bearer token (surrounding whitespace is ignored).
    pub bearer_token_file: Option<Spanned<PathBuf>>,
    pub api_key: Option<Secret>,
    /// A file holding the API key (surrounding whitespace is ignored).
    pub api_key_file: Option<Spanned<PathBuf>>,
    /// Set once [`Self::load`] has read the files into the secrets.
    #[serde(skip)]
    loaded: bool,
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

/// How much of a credential file is the secret.
#[derive(Clone, Copy)]
enum Trim {
    /// Only a trailing line break (`echo secret > file`): a password may
    /// begin or end with spaces.
    LineEnd,
    /// Surrounding whitespace: tokens and keys never hold any.
    Whitespace,
}

fn read_secret(path: &std::path::Path, trim: Trim) -> Result<Secret, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("`{}` is not UTF-8 text", path.display()))?;
    let secret = match trim {
        Trim::LineEnd => text.trim_end_matches(['\n', '\r']),
        Trim::Whitespace => text.trim(),
    };
    if secret.is_empty() {
        return Err(format!("`{}` is empty", path.display()));
    }
    Ok(Secret(secret.to_owned()))
}

/// A `*_file` key: its name, path, the secret it fills, and how it is trimmed.
type CredentialFile<'a> = (
    &'static str,
    &'a mut Option<Spanned<PathBuf>>,
    &'a mut Option<Secret>,
    Trim,
);

impl AuthConfig {
    /// The credential files, each with its inline alternative.
    fn files(&mut self) -> [CredentialFile<'_>; 3] {
        [
            (
                "password",
                &mut self.password_file,
                &mut self.password,
                Trim::LineEnd,
            ),
            (
                "bearer_token",
                &mut self.bearer_token_file,
                &mut self.bearer_token,
                Trim::Whitespace,
            ),
            (
                "api_key",
                &mut self.api_key_file,
                &mut self.api_key,
                Trim::Whitespace,
            ),
        ]
    }

    /// Reads the credential files into their secrets, at config load; an
    /// error points at the `*_file` key's value. The `*_file` keys stay set,
    /// for `auditrail check` and messages.
    pub fn load(&mut self) -> Result<(), Diagnostic> {
        if self.loaded {
            return Ok(());
        }
        for (key, path, inline, trim) in self.files() {
            let Some(path) = path else { continue };
            let span = path.span();
            let secret = read_secret(path.get_ref(), trim).map_err(|m| {
                Diagnostic::new(m)
                    .at(span.clone())
                    .with_label(format!("`auth.{key}_file`"))
            })?;
            *inline = Some(secret);
        }
        self.loaded = true;
        Ok(())
    }

    /// The one auth method configured. Files not read by [`Self::load`]
    /// (configs built in code) are read here.
    pub fn resolve(&self) -> Result<Auth, SetupError> {
        let mut config = self.clone();
        for (key, path, inline, trim) in config.files() {
            if let Some(path) = path
                && inline.is_none()
            {
                *inline = Some(
                    read_secret(path.get_ref(), trim)
                        .map_err(|m| SetupError::Invalid(format!("`auth.{key}_file`: {m}")))?,
                );
            }
        }
        let mut methods = Vec::new();
        if let Some(user) = &config.user {
            let password = config.password.clone().unwrap_or(Secret(String::new()));
            methods.push(Auth::Basic {
                user: user.clone(),
                password,
            });
        } else if config.password.is_some() {
            return Err(SetupError::Invalid(
                "`auth.password` (or `password_file`) needs `auth.user`".into(),
            ));
        }
        if let Some(token) = &config.bearer_token {
            methods.push(Auth::Bearer(token.clone()));
        }
        if let Some(key) = &config.api_key {
            methods.push(Auth::ApiKey(key.clone()));
        }
        match methods.len() {
            0 => Ok(Auth::None),
            1 => Ok(methods.remove(0)),
            _ => Err(SetupError::Invalid(
                "`auth` takes one method: `user` with `password` or `password_file`, `bearer_token` or `bearer_token_file`, or `api_key` or `api_key_file`".into(),
            )),
        }
    }

    /// Checks without reading files that no secret is given both inline
    /// and in a file.
    pub fn validate(&self) -> Result<(), String> {
        let pairs = [
            (
                "password",
                self.password_file.is_some(),
                self.password.is_some(),
            ),
            (
                "bearer_token",
                self.bearer_token_file.is_some(),
                self.bearer_token.is_some(),
            ),
            (
                "api_key",
                self.api_key_file.is_some(),
                self.api_key.is_some(),
            ),
        ];
        for (key, file, inline) in pairs {
            if file && inline && !self.loaded {
                return Err(format!(
                    "set either `auth.{key}` or `auth.{key}_file`, not both"
                ));
            }
        }
        Ok(())
    }
}

/// Adds basic auth, when configured, to a request.
pub fn with_auth(request: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
    match auth {
        Auth::Basic { user, password } => request.basic_auth(user, Some(&password.0)),
        _ => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceFile;

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

    fn parse(text: &str) -> AuthConfig {
        toml::from_str(text).unwrap()
    }

    fn file(text: &str) -> SourceFile {
        SourceFile {
            name: "auditrail.toml".into(),
            text: text.into(),
        }
    }

    #[test]
    fn credential_files_are_read_at_load_and_trimmed_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), " pass word \n").unwrap();
        std::fs::write(dir.path().join("key"), "\n  a2V5OnNlY3JldA==\n").unwrap();
        let text = format!(
            "user = \"u\"\npassword_file = \"{}\"\n",
            dir.path().join("password").display()
        );
        let mut config = parse(&text);
        config.load().unwrap();
        match config.resolve().unwrap() {
            Auth::Basic { user, password } => {
                assert_eq!(user, "u");
                assert_eq!(password.0, " pass word ");
            }
            other => panic!("{other:?}"),
        }
        let text = format!("api_key_file = \"{}\"\n", dir.path().join("key").display());
        let config = parse(&text);
        // Without `load` (a config made in code), `resolve` reads the file.
        assert!(matches!(config.resolve().unwrap(), Auth::ApiKey(k) if k.0 == "a2V5OnNlY3JldA=="));
    }

    #[test]
    fn a_missing_credential_file_is_an_error_at_its_value() {
        let text = "user = \"u\"\npassword_file = \"/nonexistent/auditrail-test/password\"\n";
        let mut config = parse(text);
        let rendered = config.load().unwrap_err().render(&file(text));
        assert!(
            rendered.contains("cannot read `/nonexistent/auditrail-test/password`"),
            "{rendered}"
        );
        assert!(rendered.contains("auditrail.toml:2:17"), "{rendered}");
    }

    #[test]
    fn a_secret_inline_and_in_a_file_is_refused() {
        let config = parse("api_key = \"k\"\napi_key_file = \"/k\"\n");
        assert!(config.validate().unwrap_err().contains("not both"));
    }
}
