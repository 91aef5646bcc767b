//! Reading a `_bulk` answer. Success is per item, not the HTTP status: a 200
//! can carry `"errors": true`. Each item is delivered (2xx, or 409 on
//! `create`: the document is already there), retried (429, 5xx, and the
//! transient rejections Elasticsearch reports under other statuses, such as
//! the 403 `cluster_block_exception` of a flood-stage disk) or rejected for
//! good (mapping errors and other 4xx: dead-lettered).
//!
//! An answer that is not a `_bulk` response (a proxy's HTML page, another
//! API's JSON: no `errors` flag) or whose items are not one per document
//! sent proves nothing about what was indexed: the whole request is retried
//! (with `create`, the documents already indexed then answer 409 and count
//! as delivered). `"errors": false` with no items at all, as some
//! Elasticsearch-compatible servers answer, counts as all indexed.

use serde::Deserialize;
use serde_json::Value;

use super::dead_letter::item_reason;
use crate::batch::{Delivery, OutputError};
use crate::output::net::response::server_reason;

/// Error types that pass with time, whatever their status.
const RETRYABLE_TYPES: &[&str] = &[
    "es_rejected_execution_exception",
    "circuit_breaking_exception",
    "unavailable_shards_exception",
    "cluster_block_exception",
    "process_cluster_event_timeout_exception",
    "node_not_connected_exception",
    "no_shard_available_action_exception",
];

#[derive(Debug, Deserialize)]
struct BulkResponse {
    /// Whether any item failed; required, as in every `_bulk` answer.
    errors: bool,
    #[serde(default)]
    items: Vec<BulkItem>,
}

/// `{"create": {...}}`: one key, the operation.
#[derive(Debug, Deserialize)]
struct BulkItem {
    create: Option<ItemResult>,
    index: Option<ItemResult>,
}

#[derive(Debug, Deserialize)]
struct ItemResult {
    status: u16,
    error: Option<Value>,
}

/// What one `_bulk` answer means for the batch.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BulkOutcome {
    pub(super) delivery: Delivery,
    /// Items that were already indexed (409 on `create`).
    pub(super) duplicates: u64,
}

/// Classifies a 2xx `_bulk` answer for a batch of `sent` events.
pub(super) fn read_bulk_response(
    body: &[u8],
    sent: usize,
    create: bool,
) -> Result<BulkOutcome, OutputError> {
    let response: BulkResponse = serde_json::from_slice(body).map_err(|_| OutputError::Retry {
        reason: format!(
            "the answer to `_bulk` is not a bulk response ({}); is the endpoint an Elasticsearch node?",
            server_reason(body).unwrap_or_else(|| "an empty body".into())
        ),
        retry_after: None,
    })?;
    if response.items.is_empty() && !response.errors {
        // Some Elasticsearch-compatible servers answer a success without
        // items: the server says every document was taken.
        return Ok(BulkOutcome {
            delivery: Delivery::All,
            duplicates: 0,
        });
    }
    if response.items.len() != sent {
        return Err(OutputError::Retry {
            reason: format!(
                "the `_bulk` answer has {} items for {sent} documents sent; the whole request is sent again",
                response.items.len()
            ),
            retry_after: None,
        });
    }
    let mut retry = Vec::new();
    let mut rejected = Vec::new();
    let mut duplicates = 0;
    for (i, item) in response.items.into_iter().enumerate() {
        let Some(result) = item.create.or(item.index) else {
            retry.push(i);
            continue;
        };
        let error_type = result
            .error
            .as_ref()
            .and_then(|e| e.get("type"))
            .and_then(Value::as_str);
        match classify(result.status, error_type, create) {
            Fate::Delivered => {}
            Fate::Duplicate => duplicates += 1,
            Fate::Retry => retry.push(i),
            Fate::Rejected => {
                let reason = result.error.as_ref().and_then(reason_with_cause);
                rejected.push((i, item_reason(result.status, error_type, reason.as_deref())));
            }
        }
    }
    let delivery = if retry.is_empty() && rejected.is_empty() {
        Delivery::All
    } else {
        Delivery::Partial { retry, rejected }
    };
    Ok(BulkOutcome {
        delivery,
        duplicates,
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Fate {
    Delivered,
    Duplicate,
    Retry,
    Rejected,
}

fn classify(status: u16, error_type: Option<&str>, create: bool) -> Fate {
    match status {
        200..=299 => Fate::Delivered,
        409 if create => Fate::Duplicate,
        429 | 500..=599 => Fate::Retry,
        _ if error_type.is_some_and(|t| RETRYABLE_TYPES.contains(&t)) => Fate::Retry,
        _ => Fate::Rejected,
    }
}

/// An item error's reason with its innermost `caused_by`: OpenSearch says
/// only "failed to parse" for a document it cannot map, and the why ("field
/// name cannot contain only the character [.]") is in `caused_by`.
fn reason_with_cause(error: &Value) -> Option<String> {
    let reason = error.get("reason").and_then(Value::as_str)?;
    let mut cause = None;
    let mut inner = error.get("caused_by");
    while let Some(next) = inner {
        cause = Some(next);
        inner = next.get("caused_by");
    }
    let described = cause.and_then(|c| {
        let text = c.get("reason").and_then(Value::as_str)?;
        Some(match c.get("type").and_then(Value::as_str) {
            Some(kind) => format!("{kind}: {text}"),
            None => text.to_owned(),
        })
    });
    Some(match described {
        Some(cause) if cause != reason => format!("{reason} (caused by {cause})"),
        _ => reason.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_errors_means_all_delivered() {
        let body = br#"{"errors":false,"items":[{"create":{"status":201}}]}"#;
        let outcome = read_bulk_response(body, 1, true).unwrap();
        assert_eq!(outcome.delivery, Delivery::All);
    }

    #[test]
    fn items_are_sorted_into_delivered_duplicate_retry_and_rejected() {
        let body = br#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [responseObject.status]"}}},
            {"create":{"status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},
            {"create":{"status":403,"error":{"type":"cluster_block_exception","reason":"flood-stage watermark"}}},
            {"index":{"status":404,"error":{"type":"index_not_found_exception","reason":"no such index"}}}
        ]}"#;
        let outcome = read_bulk_response(body, 7, true).unwrap();
        assert_eq!(outcome.duplicates, 1);
        assert_eq!(
            outcome.delivery,
            Delivery::Partial {
                retry: vec![2, 4, 5],
                rejected: vec![
                    (3, "status 400: mapper_parsing_exception: failed to parse field [responseObject.status]".into()),
                    (6, "status 404: index_not_found_exception: no such index".into()),
                ],
            }
        );
    }

    #[test]
    fn a_rejection_names_its_innermost_cause() {
        // As OpenSearch 2.19 answers a document with a `"."` key.
        let body = br#"{"errors":true,"items":[{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse","caused_by":{"type":"illegal_argument_exception","reason":"field name cannot contain only the character [.]"}}}}]}"#;
        let outcome = read_bulk_response(body, 1, true).unwrap();
        let Delivery::Partial { rejected, .. } = outcome.delivery else {
            panic!("a rejection")
        };
        assert_eq!(
            rejected[0].1,
            "status 400: mapper_parsing_exception: failed to parse (caused by illegal_argument_exception: field name cannot contain only the character [.])"
        );
    }

    #[test]
    fn a_409_without_create_is_a_rejection() {
        let body = br#"{"errors":true,"items":[{"index":{"status":409,"error":{"type":"version_conflict_engine_exception"}}}]}"#;
        let outcome = read_bulk_response(body, 1, false).unwrap();
        assert!(
            matches!(outcome.delivery, Delivery::Partial { ref rejected, .. } if rejected.len() == 1)
        );
    }

    fn reason(result: Result<BulkOutcome, OutputError>) -> String {
        match result {
            Err(OutputError::Retry { reason, .. }) => reason,
            other => panic!("not a retry: {other:?}"),
        }
    }

    #[test]
    fn a_short_or_unreadable_answer_is_retried_whole_with_the_reason() {
        let html = reason(read_bulk_response(
            b"<html><head><title>Sign in - Corporate Proxy</title></head><body>...</body></html>",
            1,
            true,
        ));
        assert!(
            html.contains("not a bulk response (an HTML page: Sign in - Corporate Proxy)"),
            "{html}"
        );
        let body = br#"{"errors":true,"items":[{"create":{"status":201}}]}"#;
        assert!(reason(read_bulk_response(body, 2, true)).contains("1 items for 2 documents sent"));
        // Not everything that parses is a bulk answer: `{}` from another
        // API must not acknowledge anything.
        let other = reason(read_bulk_response(br#"{"acknowledged":true}"#, 1, true));
        assert!(other.contains("not a bulk response"), "{other}");
        let short = br#"{"errors":true,"items":[]}"#;
        assert!(reason(read_bulk_response(short, 3, true)).contains("0 items for 3"));
        // `errors: false` without items is a success some compatible
        // servers give.
        let bare = read_bulk_response(br#"{"took":1,"errors":false,"items":[]}"#, 3, true).unwrap();
        assert_eq!(bare.delivery, Delivery::All);
    }
}
