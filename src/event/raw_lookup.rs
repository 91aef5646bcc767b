//! Reads one field out of a record's original JSON text without building the
//! whole document: keys off the path are skipped (but still validated), so a
//! filter that only reads `objectRef.namespace` costs a scan, not a parse.
//! serde_json has no path query of its own, hence this small seed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::path::PathSegment;

/// Validates `raw` as one JSON value and returns the value at `path`, if any.
/// An empty path returns the whole value.
pub(super) fn lookup(raw: &str, path: &[PathSegment]) -> Result<Option<Value>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(raw);
    let found = PathSeed { path }.deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

/// An object key, borrowed from the text unless it had escapes. (serde's own
/// `Cow<str>` always allocates, which would cost one `String` per key.)
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

struct PathSeed<'p> {
    path: &'p [PathSegment],
}

impl<'de> DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Option<Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match self.path.first() {
            None => de::Deserialize::deserialize(d).map(Some),
            Some(_) => d.deserialize_any(PathVisitor { path: self.path }),
        }
    }
}

struct PathVisitor<'p> {
    path: &'p [PathSegment],
}

impl<'de> Visitor<'de> for PathVisitor<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let wanted = match &self.path[0] {
            PathSegment::Key(key) => Some(&**key),
            PathSegment::Index(_) => None,
        };
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            // The last of duplicate keys wins, as when the record is parsed.
            if wanted == Some(&*key) {
                found = map.next_value_seed(PathSeed {
                    path: &self.path[1..],
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let wanted = match self.path[0] {
            PathSegment::Index(index) => Some(index),
            PathSegment::Key(_) => None,
        };
        let mut found = None;
        let mut position = 0;
        loop {
            if wanted == Some(position) {
                match seq.next_element_seed(PathSeed {
                    path: &self.path[1..],
                })? {
                    Some(value) => found = value,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            position += 1;
        }
        Ok(found)
    }

    // Scalars have no fields: the path does not exist.
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::path::FieldPath;

    fn get(raw: &str, path: &str) -> Option<Value> {
        lookup(raw, FieldPath::parse(path).unwrap().segments()).unwrap()
    }

    #[test]
    fn finds_nested_keys_indexes_and_escaped_keys() {
        let raw = r#"{"a":{"b":[1,{"c":"x\u0026y"}]},"k\u002ey":2,"objectRef":{"namespace":"kube-system"}}"#;
        assert_eq!(get(raw, "objectRef.namespace"), Some("kube-system".into()));
        assert_eq!(get(raw, "a.b[1].c"), Some("x&y".into()));
        assert_eq!(get(raw, "a.b[0]"), Some(1.into()));
        assert_eq!(get(raw, "\"k.y\""), Some(2.into()));
        assert_eq!(get(raw, "a.b[5]"), None);
        assert_eq!(get(raw, "a.b.c"), None);
        assert_eq!(get(raw, "missing"), None);
        assert_eq!(get(raw, "objectRef.namespace.deeper"), None);
    }

    #[test]
    fn rejects_invalid_json_even_after_the_field() {
        let path = FieldPath::parse("a").unwrap();
        assert!(lookup(r#"{"a":1,"b":}"#, path.segments()).is_err());
        assert!(lookup(r#"{"a":1} trailing"#, path.segments()).is_err());
    }

    #[test]
    fn the_last_of_duplicate_keys_wins() {
        assert_eq!(get(r#"{"a":1,"a":2}"#, "a"), Some(2.into()));
    }
}
