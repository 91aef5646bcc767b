//! Property tests: parsers of untrusted text never panic, whatever the input.

use proptest::prelude::*;

use crate::audit::access_record::AccessRecord;
use crate::audit::legacy::LegacyLine;
use crate::audit::request_info::RequestInfo;

/// Strings biased towards the characters the parsers care about.
fn uri_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("/".to_owned()),
            Just("api".to_owned()),
            Just("apis".to_owned()),
            Just("namespaces".to_owned()),
            Just("watch".to_owned()),
            Just("proxy".to_owned()),
            Just("?".to_owned()),
            Just("&".to_owned()),
            Just("=".to_owned()),
            Just("%".to_owned()),
            Just("%2F".to_owned()),
            Just("fieldSelector=".to_owned()),
            Just("labelSelector=".to_owned()),
            Just("watch=".to_owned()),
            Just("limit=".to_owned()),
            "[ -~]{0,4}",
            any::<String>(),
        ],
        0..16,
    )
    .prop_map(|parts| parts.concat())
}

fn legacy_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("2017-08-25T04:40:49.9659Z".to_owned()),
            Just(" AUDIT: ".to_owned()),
            Just("id=".to_owned()),
            Just("stage=".to_owned()),
            Just("groups=".to_owned()),
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("\\x".to_owned()),
            Just("\\u".to_owned()),
            Just("\\3".to_owned()),
            Just(",".to_owned()),
            "[ -~]{0,6}",
            any::<String>(),
        ],
        0..16,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn request_info_never_panics(method in "[A-Za-z]{0,7}", uri in uri_like()) {
        let _ = RequestInfo::resolve(&method, &uri);
    }

    #[test]
    fn request_info_never_panics_on_any_string(method in any::<String>(), uri in any::<String>()) {
        let _ = RequestInfo::resolve(&method, &uri);
    }

    #[test]
    fn legacy_parse_never_panics(line in legacy_like()) {
        let _ = LegacyLine::parse(&line);
    }

    #[test]
    fn legacy_parse_never_panics_on_any_string(line in any::<String>()) {
        let _ = LegacyLine::parse(&line);
    }

    #[test]
    fn access_record_parse_never_panics(line in any::<String>()) {
        let _ = AccessRecord::from_json(&line);
    }
}
