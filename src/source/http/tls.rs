//! TLS for the http source: a rustls server config from PEM files, requiring
//! client certificates signed by `client_ca` when it is set (a connection
//! without one fails the handshake; there is no unauthenticated fallback).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::TlsConfig;

/// TLS material that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum TlsError {
    #[error("failed to read PEM file `{}`", path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificates in `{}`", path.display())]
    NoCertificates { path: PathBuf },
    #[error("invalid client CA certificate in `{}`", path.display())]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("failed to set up client certificate verification")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("the certificate in `{}` does not fit the key in `{}`", cert.display(), key.display())]
    Config {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

impl TlsError {
    /// Where in the `tls` table the file at fault is named.
    pub(super) fn key_span(&self, config: &TlsConfig) -> std::ops::Range<usize> {
        let named = |path: &Path| {
            [
                Some(&config.cert),
                Some(&config.key),
                config.client_ca.as_ref(),
            ]
            .into_iter()
            .flatten()
            .find(|key| key.get_ref() == path)
            .map(toml::Spanned::span)
        };
        let client_ca = config.client_ca.as_ref().map(toml::Spanned::span);
        match self {
            Self::Pem { path, .. } | Self::NoCertificates { path } => named(path),
            Self::BadCa { .. } | Self::Verifier(_) => client_ca,
            Self::Config { .. } => None,
        }
        .unwrap_or_else(|| config.cert.span())
    }
}

/// Makes aws-lc-rs the process's crypto provider, once. rustls panics at the
/// first handshake if several providers are compiled in and none is chosen.
pub(crate) fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means another part of the process installed one first: fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// Builds the server config from the `tls` table.
pub(super) fn load(config: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    install_crypto_provider();
    let certs = read_certs(config.cert.get_ref())?;
    let key =
        PrivateKeyDer::from_pem_file(config.key.get_ref()).map_err(|source| TlsError::Pem {
            path: config.key.get_ref().clone(),
            source,
        })?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &config.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca.get_ref())? {
                roots.add(cert).map_err(|source| TlsError::BadCa {
                    path: ca.get_ref().clone(),
                    source,
                })?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(TlsError::Verifier)?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Config {
            cert: config.cert.get_ref().clone(),
            key: config.key.get_ref().clone(),
            source,
        })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem {
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}
