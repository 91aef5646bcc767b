//! How an answer to a request is read: `Retry-After`, transport failures,
//! and non-2xx statuses classified for the driver, each described with the
//! server's own reason (an Elasticsearch error's type and reason, an HTML
//! page's title, or the start of the body), never the request.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::batch::OutputError;

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
    // A TLS failure is said in words instead of rustls's debug text.
    let cause = crate::tls::describe(error).unwrap_or_else(|| crate::error_chain(error));
    OutputError::Retry {
        reason: format!("{kind}: {cause}"),
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

/// `HTTP 401 Unauthorized: security_exception: unable to authenticate …`:
/// the status and the server's own reason.
pub fn describe_status(status: reqwest::StatusCode, body: &[u8]) -> String {
    match server_reason(body) {
        Some(reason) => format!("HTTP {status}: {reason}"),
        None => format!("HTTP {status}"),
    }
}

/// At most this many characters of a server's reason are kept.
const MAX_REASON: usize = 300;

/// The reason an answer gives, in one line: an Elasticsearch error's
/// `type: reason`, another JSON error's `message` or `error`, an HTML page's
/// title (proxies and load balancers answer HTML), or the start of the text.
/// `None` for an empty body.
pub fn server_reason(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.starts_with('{')
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
        && let Some(reason) = json_reason(&value)
    {
        return Some(shorten(&reason));
    }
    if text.starts_with('<') {
        return Some(format!("an HTML page: {}", shorten(&html_reason(text))));
    }
    Some(shorten(text))
}

fn json_reason(value: &serde_json::Value) -> Option<String> {
    let error = value.get("error").unwrap_or(value);
    if let Some(text) = error.as_str() {
        return Some(text.to_owned());
    }
    let kind = error.get("type").and_then(serde_json::Value::as_str);
    let reason = error
        .get("reason")
        .or_else(|| error.get("message"))
        .or_else(|| error.get("Message"))
        .and_then(serde_json::Value::as_str);
    match (kind, reason) {
        (Some(kind), Some(reason)) => Some(format!("{kind}: {reason}")),
        (Some(text), None) | (None, Some(text)) => Some(text.to_owned()),
        (None, None) => None,
    }
}

/// The `<title>` (else the first `<h1>`, else the text without tags).
fn html_reason(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    for tag in ["title", "h1"] {
        let open = format!("<{tag}");
        if let Some(start) = lower.find(&open)
            && let Some(gt) = lower[start..].find('>')
        {
            let from = start + gt + 1;
            let to = lower[from..]
                .find(&format!("</{tag}"))
                .map_or(html.len(), |end| from + end);
            let inner = strip_tags(&html[from..to]);
            if !inner.is_empty() {
                return inner;
            }
        }
    }
    strip_tags(html)
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One line of at most [`MAX_REASON`] characters.
fn shorten(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX_REASON) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

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
    fn reasons_come_from_elasticsearch_errors_html_pages_and_plain_text() {
        let status = |code| reqwest::StatusCode::from_u16(code).unwrap();
        let es401 = br#"{"error":{"root_cause":[{"type":"security_exception","reason":"unable to authenticate user [auditrail] for REST request [/_bulk]"}],"type":"security_exception","reason":"unable to authenticate user [auditrail] for REST request [/_bulk]"},"status":401}"#;
        assert_eq!(
            describe_status(status(401), es401),
            "HTTP 401 Unauthorized: security_exception: unable to authenticate user [auditrail] for REST request [/_bulk]"
        );
        let nginx = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
        assert_eq!(
            describe_status(status(502), nginx),
            "HTTP 502 Bad Gateway: an HTML page: 502 Bad Gateway"
        );
        assert_eq!(
            server_reason(
                br#"{"message":"The security token included in the request is invalid."}"#
            )
            .unwrap(),
            "The security token included in the request is invalid."
        );
        assert_eq!(
            server_reason(b"  no\n  such\tthing "),
            Some("no such thing".into())
        );
        assert_eq!(
            describe_status(status(503), b""),
            "HTTP 503 Service Unavailable"
        );
        let long = "x".repeat(1000);
        assert!(server_reason(long.as_bytes()).unwrap().chars().count() <= MAX_REASON + 1);
    }
}
