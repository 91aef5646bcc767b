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
    let certs = read_certs(&config.cert)?;
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|source| TlsError::Pem {
        path: config.key.clone(),
        source,
    })?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &config.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|source| TlsError::BadCa {
                    path: ca.clone(),
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
            cert: config.cert.clone(),
            key: config.key.clone(),
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
