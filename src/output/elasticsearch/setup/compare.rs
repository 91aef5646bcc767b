//! Whether what a server holds already is what setup would put there.
//!
//! Servers give back more than they were sent (defaults such as ILM's
//! `min_age: 0ms` or ISM's `retry`, `composed_of: []`) and reshape some of
//! it (index settings come back nested, every value a string), so "the
//! same" means: every key we send is there with the same value, scalars
//! compared by their text, settings compared by their dotted names.

use serde_json::{Map, Value};

/// Whether `actual` holds everything `wanted` says.
pub(super) fn contains(actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::Object(actual), Value::Object(wanted)) => wanted
            .iter()
            .all(|(key, want)| actual.get(key).is_some_and(|have| contains(have, want))),
        (Value::Array(actual), Value::Array(wanted)) => {
            actual.len() == wanted.len()
                && actual
                    .iter()
                    .zip(wanted)
                    .all(|(have, want)| contains(have, want))
        }
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => false,
        (have, want) => scalar_text(have) == scalar_text(want),
    }
}

/// `true`, `"true"`; `1000`, `"1000"`: the same setting.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// Index settings as dotted names: `{"index": {"codec": "x"}}` and
/// `{"index.codec": "x"}` both become `index.codec = "x"`, and a name
/// without the `index.` prefix gets it, as the server adds it.
pub(super) fn flat_settings(settings: &Value) -> Value {
    fn walk(prefix: &str, value: &Value, out: &mut Map<String, Value>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&name, value, out);
                }
            }
            other => {
                let name = if prefix.starts_with("index.") {
                    prefix.to_owned()
                } else {
                    format!("index.{prefix}")
                };
                out.insert(name, other.clone());
            }
        }
    }
    let mut out = Map::new();
    walk("", settings, &mut out);
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_keys_on_the_server_and_text_scalars_still_match() {
        let wanted = json!({"priority": 200, "template": {"mappings": {"dynamic": false}}});
        let actual = json!({"priority": 200, "composed_of": [],
            "template": {"mappings": {"dynamic": "false", "properties": {}}}});
        assert!(contains(&actual, &wanted));
        assert!(!contains(&json!({"priority": 100}), &wanted));
        assert!(!contains(&json!({}), &json!({"a": null})));
    }

    #[test]
    fn arrays_match_element_by_element_and_in_length() {
        assert!(contains(&json!(["a-*"]), &json!(["a-*"])));
        assert!(!contains(&json!(["a-*", "b-*"]), &json!(["a-*"])));
        assert!(!contains(&json!(["b-*"]), &json!(["a-*"])));
        assert!(!contains(&json!("a-*"), &json!(["a-*"])));
    }

    #[test]
    fn nested_and_dotted_settings_flatten_alike() {
        let sent =
            json!({"index.codec": "best_compression", "index.mapping.total_fields.limit": 1000});
        let stored = json!({"index": {"codec": "best_compression",
            "mapping": {"total_fields": {"limit": "1000"}}}});
        assert!(contains(&flat_settings(&stored), &flat_settings(&sent)));
        assert_eq!(
            flat_settings(&json!({"number_of_shards": 1})),
            json!({"index.number_of_shards": 1})
        );
    }
}
