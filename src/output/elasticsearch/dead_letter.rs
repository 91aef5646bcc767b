//! The reason written next to an event Elasticsearch rejected: status,
//! error type and a bounded piece of the reason (mapping errors can quote
//! whole documents), never the document itself a second time.

/// At most this many bytes of Elasticsearch's reason are kept.
const MAX_REASON: usize = 500;

/// `status 400: mapper_parsing_exception: failed to parse field [x]…`.
pub(super) fn item_reason(status: u16, error_type: Option<&str>, reason: Option<&str>) -> String {
    let mut text = format!("status {status}");
    if let Some(kind) = error_type {
        text.push_str(": ");
        text.push_str(kind);
    }
    if let Some(reason) = reason {
        text.push_str(": ");
        let mut end = reason.len().min(MAX_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        text.push_str(&reason[..end]);
        if end < reason.len() {
            text.push('…');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_status_and_type_and_stay_short() {
        assert_eq!(
            item_reason(
                400,
                Some("mapper_parsing_exception"),
                Some("failed to parse")
            ),
            "status 400: mapper_parsing_exception: failed to parse"
        );
        let long = "é".repeat(1000);
        let text = item_reason(400, None, Some(&long));
        assert!(text.len() < 520 && text.ends_with('…'), "{}", text.len());
    }
}
