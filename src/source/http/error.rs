//! Why a request was not answered 200, and the status each reason maps to.
//! Client mistakes (4xx) carry a reason for the client and are counted, not
//! logged: a misconfigured client would otherwise flood the agent's log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A request the source did not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The body is not what the content type promises: truncated JSON, an
    /// unexpected `kind`, `items` that is not a list, an item that is not an
    /// object, invalid gzip, invalid UTF-8. Nothing from it was emitted.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// No `Authorization: Bearer` header, or a token not in the tokens file.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A POST to a path outside the source's `path`.
    #[error("no events are received at this path")]
    NotFound,
    /// Anything but POST on the events path.
    #[error("only POST is accepted here")]
    MethodNotAllowed,
    /// The body, or its gzip-decompressed content, is over `max_body_size`.
    #[error("request body over the limit of {0} bytes")]
    TooLarge(usize),
    /// A content type or encoding the source does not read.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// The body did not arrive within `request_timeout` (a slow client).
    #[error("the request body did not arrive in time")]
    Timeout,
    /// The pipeline stayed full for `queue_timeout`, or too many requests
    /// are in flight: retry later.
    #[error("the pipeline is full; retry later")]
    Busy { retry_after: u64 },
    /// The agent is stopping: retry (against the restarted agent).
    #[error("shutting down; retry later")]
    ShuttingDown { retry_after: u64 },
    /// An output failed, or delivery took over `ack_timeout`: the events may
    /// or may not have been written, so the client must resend them.
    #[error("the events could not be delivered; retry")]
    NotDelivered { retry_after: u64 },
    /// A fault of the agent's own (a decoding task that died); no details.
    #[error("something went wrong")]
    Internal,
}

impl IngestError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::ShuttingDown { .. } | Self::NotDelivered { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable name for the JSON reply.
    fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_body",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::TooLarge(_) => "body_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Timeout => "request_timeout",
            Self::Busy { .. } => "busy",
            Self::ShuttingDown { .. } => "shutting_down",
            Self::NotDelivered { .. } => "not_delivered",
            Self::Internal => "internal",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Busy { retry_after }
            | Self::ShuttingDown { retry_after }
            | Self::NotDelivered { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code(), "reason": self.to_string() });
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        match self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            // The rest of a body we refused to read, or a stopping agent:
            // close the connection rather than drain or keep it.
            Self::TooLarge(_) | Self::Timeout | Self::ShuttingDown { .. } => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_sets_retry_after() {
        let response = IngestError::Busy { retry_after: 3 }.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn unauthorized_asks_for_a_bearer_token() {
        let response = IngestError::Unauthorized.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
