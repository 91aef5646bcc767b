//! HTTPS with required client certificates and bearer tokens, with
//! certificates generated per test.

use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use super::{Output, config, event, event_list, start};

const TOKEN: &str = "s3cret-token-for-tests";

struct Pki {
    ca_pem: String,
    client_pem: String,
    rogue_client_pem: String,
}

fn issuer(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf signed by `ca`; returns its certificate and key as one PEM.
fn leaf(ca: &CertifiedIssuer<'static, KeyPair>, name: &str, sans: &[&str]) -> (String, String) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Writes a CA, a server certificate for 127.0.0.1, a client certificate
/// from that CA and one from another CA.
fn pki(dir: &Path) -> Pki {
    let ca = issuer("auditrail test CA");
    let (server_cert, server_key) = leaf(&ca, "auditrail", &["127.0.0.1", "localhost"]);
    let (client_cert, client_key) = leaf(&ca, "kube-apiserver-audit-client", &[]);
    let rogue = issuer("someone else's CA");
    let (rogue_cert, rogue_key) = leaf(&rogue, "kube-apiserver-audit-client", &[]);
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), server_cert).unwrap();
    std::fs::write(dir.join("server.key"), server_key).unwrap();
    std::fs::write(dir.join("tokens"), format!("# webhook tokens\n{TOKEN}\n")).unwrap();
    Pki {
        ca_pem: ca.pem(),
        client_pem: format!("{client_cert}{client_key}"),
        rogue_client_pem: format!("{rogue_cert}{rogue_key}"),
    }
}

fn client(ca_pem: &str, identity: Option<&str>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(30));
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// Only a client with a certificate from `client_ca` and a listed token gets
/// its events in; everything else is refused before any event is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_and_bearer_tokens_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let output = Output::default();
    let (agent, addr) = start(
        dir,
        &config(
            r#"tls = { cert = "{dir}/server.crt", key = "{dir}/server.key", client_ca = "{dir}/ca.crt" }
auth = { bearer_tokens_file = "{dir}/tokens" }"#,
        ),
        &output,
    );
    let url = format!("https://{}/audit", addr);
    let accepted = event("accepted");
    let body = event_list(&[&accepted]);
    let refused = event_list(&[event("refused")]);

    let no_cert = client(&pki.ca_pem, None);
    let sent = no_cert
        .post(&url)
        .bearer_auth(TOKEN)
        .body(refused.clone())
        .send()
        .await;
    assert!(sent.is_err(), "a client without a certificate got {sent:?}");

    let rogue = client(&pki.ca_pem, Some(&pki.rogue_client_pem));
    let sent = rogue
        .post(&url)
        .bearer_auth(TOKEN)
        .body(refused.clone())
        .send()
        .await;
    assert!(sent.is_err(), "a certificate from another CA got {sent:?}");

    let plain = reqwest::Client::new();
    let sent = plain
        .post(format!("http://{}/audit", addr))
        .body(refused.clone())
        .send()
        .await;
    assert!(sent.is_err(), "plain HTTP on the TLS port got {sent:?}");

    let valid = client(&pki.ca_pem, Some(&pki.client_pem));
    let response = valid
        .post(&url)
        .bearer_auth("wrong-token")
        .body(refused.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let response = valid.post(&url).body(refused.clone()).send().await.unwrap();
    assert_eq!(response.status(), 401, "no token");

    let health = valid
        .get(format!("https://{}/healthz", addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "probes need no token");

    let response = valid
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(reply["events"], 1);

    assert!(output.wait_for(1, Duration::from_secs(30)));
    agent.stop().assert_success();
    assert_eq!(
        output.lines(),
        [accepted],
        "only the authorised event arrived"
    );
}

/// No TLS, no auth, a non-loopback address: the config is refused with a
/// pointer at `listen`, unless `insecure = true` says it is meant.
#[test]
fn an_open_listener_needs_an_explicit_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auditrail.toml");
    let open = config("").replace("127.0.0.1:0", "0.0.0.0:0");
    std::fs::write(&path, &open).unwrap();
    let out = crate::support::auditrail()
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without TLS or authentication"), "{stderr}");
    assert!(
        stderr.contains("auditrail.toml:8:"),
        "points at `listen`: {stderr}"
    );
    assert!(stderr.contains("insecure = true"), "{stderr}");

    std::fs::write(
        &path,
        open.replace("tag = \"audit\"", "tag = \"audit\"\ninsecure = true"),
    )
    .unwrap();
    let out = crate::support::auditrail()
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens a TLS connection that negotiates HTTP/2 and sends only the
/// connection preface and an empty SETTINGS frame, then nothing.
async fn preface_only(
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use tokio::io::AsyncWriteExt;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    tls
}

/// HTTP/2 connections that never send a request are closed after
/// `header_read_timeout`, as idle HTTP/1.1 ones are, so they cannot hold
/// every `max_connections` slot while kube-apiserver's requests wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_do_not_hold_the_connection_slots() {
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let output = Output::default();
    let (agent, addr) = start(
        dir,
        &config(
            r#"tls = { cert = "{dir}/server.crt", key = "{dir}/server.key" }
auth = { bearer_tokens_file = "{dir}/tokens" }
max_connections = 2
header_read_timeout = "1s""#,
        ),
        &output,
    );
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(preface_only(addr, &pki.ca_pem).await);
    }
    // Both slots are taken; the request waits until the idle ones close.
    let accepted = event("after-idle");
    let response = client(&pki.ca_pem, None)
        .post(format!("https://{}/audit", addr))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(event_list(&[&accepted]))
        .send()
        .await
        .expect("the request got a slot once the idle connections were closed");
    assert_eq!(response.status(), 200);
    for mut connection in idle {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), connection.read_to_end(&mut rest));
        assert!(read.await.is_ok(), "an idle HTTP/2 connection stayed open");
    }
    assert!(output.wait_for(1, Duration::from_secs(30)));
    agent.stop().assert_success();
}
