//! The `http` output against an in-process HTTPS server that requires a
//! client certificate: kubeconfig `*-data` fields (CA, client certificate
//! and key, token) are enough to deliver; without the CA the server is not
//! trusted and the batch is retried, never dropped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use super::*;
use crate::batch::{Delivery, Output, OutputError};
use crate::config::Duration;
use crate::event::{Event, test_event};

struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "auditrail test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver-audit-client");
    let client = client_params.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// What the server saw: (had a client certificate, Authorization header).
type Seen = Arc<Mutex<Vec<(bool, Option<String>)>>>;

/// An HTTPS server requiring client certificates from `pki`'s CA.
async fn serve_mtls(pki: &Pki) -> (std::net::SocketAddr, Seen) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(pki.server_cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(tls) = acceptor.accept(stream).await else {
                continue;
            };
            let has_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let record = record.clone();
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    record.lock().unwrap().push((has_cert, auth));
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("{}")))
                    }
                });
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let _ = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn kubeconfig(dir: &Path, url: &str, pki: &Pki, with_ca: bool) -> PathBuf {
    let ca = if with_ca {
        format!(
            "    certificate-authority-data: {}\n",
            base64(pki.ca.as_bytes())
        )
    } else {
        String::new()
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sink\n  cluster:\n    server: {url}\n{ca}users:\n- name: apiserver\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n    token: webhook-token\ncontexts:\n- name: default\n  context:\n    cluster: sink\n    user: apiserver\ncurrent-context: default\n",
        base64(pki.client_cert.as_bytes()),
        base64(pki.client_key.as_bytes()),
    );
    let path = dir.join("kubeconfig.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn config(kubeconfig: PathBuf) -> HttpConfig {
    let mut config: HttpConfig = toml::from_str(r#"url = "http://unused""#).unwrap();
    config.url = None;
    config.kubeconfig = Some(kubeconfig);
    config.timeout = Duration::from_secs(5);
    config
}

/// Encodes `events` as the driver does and sends them once.
async fn send(output: &mut HttpOutput, events: &[Event]) -> Result<Delivery, OutputError> {
    let mut body = Vec::new();
    for event in events {
        output.encode(event, &mut body);
    }
    output.finish(&mut body);
    output.send(body.into(), events.len()).await
}

fn events() -> Vec<Event> {
    vec![test_event(r#"{"auditID":"a","stage":"ResponseComplete"}"#)]
}

#[tokio::test]
async fn kubeconfig_data_fields_give_mutual_tls_and_the_token() {
    let pki = pki();
    let (addr, seen) = serve_mtls(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig(dir.path(), &format!("https://{addr}/audit"), &pki, true);
    let mut output = HttpOutput::new(&config(path), "test").unwrap();
    assert_eq!(send(&mut output, &events()).await, Ok(Delivery::All));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(true, Some("Bearer webhook-token".to_owned()))]);
}

#[tokio::test]
async fn an_untrusted_server_is_a_retryable_failure() {
    let pki = pki();
    let (addr, seen) = serve_mtls(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig(dir.path(), &format!("https://{addr}/audit"), &pki, false);
    let mut output = HttpOutput::new(&config(path), "test").unwrap();
    let result = send(&mut output, &events()).await;
    assert!(
        matches!(result, Err(OutputError::Retry { .. })),
        "{result:?}"
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn the_kube_apiserver_fixture_kubeconfig_resolves_its_current_context() {
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/netout/webhook-kubeconfig.yaml");
    std::fs::copy(&fixture, dir.path().join("k.yaml")).unwrap();
    std::fs::create_dir(dir.path().join("pki")).unwrap();
    let pki = pki();
    std::fs::write(dir.path().join("pki/ca.crt"), &pki.ca).unwrap();
    std::fs::write(
        dir.path().join("pki/apiserver-webhook-client.crt"),
        &pki.client_cert,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pki/apiserver-webhook-client.key"),
        &pki.client_key,
    )
    .unwrap();
    let target = kubeconfig::load(&dir.path().join("k.yaml")).unwrap();
    assert_eq!(
        target.url,
        "https://127.0.0.1:9443/audit/v1/events?cluster=fixture-main"
    );
    assert_eq!(target.settings.ca_pem.as_deref(), Some(pki.ca.as_bytes()));
    assert!(target.settings.identity_pem.is_some());
    assert!(
        matches!(&target.settings.auth, crate::output::net::auth::Auth::Bearer(t) if t.0 == "audit-webhook-shared-token-fixture-main")
    );
    // Relative paths are resolved from the kubeconfig's directory: without
    // the files the kubeconfig is refused with the path in the message.
    std::fs::remove_file(dir.path().join("pki/ca.crt")).unwrap();
    let error = kubeconfig::load(&dir.path().join("k.yaml")).unwrap_err();
    assert!(error.to_string().contains("pki/ca.crt"), "{error}");
}
