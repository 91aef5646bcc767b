//! TLS failures in plain words. rustls reports a certificate problem as
//! debug text (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`);
//! an operator needs to know which certificate is wrong and what to check.

use std::error::Error;

/// What went wrong in a TLS handshake somewhere in `error`'s chain, in
/// words, or `None` when the chain holds no TLS error.
pub(crate) fn describe(error: &(dyn Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(tls) = as_rustls(current) {
            return Some(words(tls));
        }
        next = current.source();
    }
    None
}

/// A rustls error, directly or inside I/O errors (tokio-rustls wraps it in
/// one, the connector in another, and `io::Error::source` skips the
/// wrapped error itself).
fn as_rustls<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = error;
    loop {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = current.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

fn words(error: &rustls::Error) -> String {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as E};
    match error {
        E::InvalidCertificate(cert) => {
            let why = match cert {
                Cert::UnknownIssuer => {
                    "is not signed by a CA this side trusts (check the CA file: `ca_file`, `client_ca` or the kubeconfig's certificate-authority)".to_owned()
                }
                Cert::Expired | Cert::ExpiredContext { .. } => "has expired".to_owned(),
                Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                    "is not valid yet (check this machine's clock)".to_owned()
                }
                Cert::NotValidForName | Cert::NotValidForNameContext { .. } => {
                    "is not valid for the host name in the URL (its subject alternative names must list it)".to_owned()
                }
                Cert::Revoked => "has been revoked".to_owned(),
                Cert::BadSignature => "has a signature that does not verify".to_owned(),
                Cert::BadEncoding => "is not a valid certificate".to_owned(),
                Cert::Other(other) => match other.to_string().as_str() {
                    "CaUsedAsEndEntity" => {
                        "is a CA certificate: the peer must present its own certificate, signed by that CA, not the CA itself".to_owned()
                    }
                    "EndEntityUsedAsCa" => {
                        "is signed by a certificate that is not a CA".to_owned()
                    }
                    "RequiredEkuNotFound" | "RequiredEkuNotFoundContext" => {
                        "is not meant for this use (its extended key usage lacks server or client authentication)".to_owned()
                    }
                    other => format!("was refused ({other})"),
                },
                other => format!("was refused ({other:?})"),
            };
            format!("TLS handshake failed: the peer's certificate {why}")
        }
        E::AlertReceived(alert) => {
            let why = match alert {
                Alert::BadCertificate | Alert::CertificateRequired => {
                    "it did not accept this side's client certificate (or needs one: check `cert_file`/`key_file`)"
                }
                Alert::UnknownCA => "it does not trust the CA of this side's client certificate",
                Alert::CertificateExpired => "this side's client certificate has expired",
                Alert::HandshakeFailure | Alert::ProtocolVersion => {
                    "the two sides share no TLS version or cipher suite"
                }
                _ => "it refused the connection",
            };
            format!("TLS handshake failed: the peer sent the alert `{alert:?}`: {why}")
        }
        E::NoCertificatesPresented => {
            "TLS handshake failed: the peer presented no certificate".to_owned()
        }
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            "TLS handshake failed: the peer does not speak TLS here (plain HTTP on this port, or a wrong port?)".to_owned()
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(std::io::Error);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn certificate_problems_are_said_in_words() {
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // As the HTTP client reports it: an I/O error inside an I/O error.
        let chain = Wrapper(std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            unknown,
        )));
        let text = describe(&chain).unwrap();
        assert!(
            text.contains("is not signed by a CA this side trusts"),
            "{text}"
        );
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate);
        assert!(describe(&alert).unwrap().contains("client certificate"));
        assert_eq!(describe(&std::io::Error::other("refused")), None);
    }
}
