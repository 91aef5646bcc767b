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

/// Where one top-level key and its value sit in the record's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeyEntry {
    key: (u32, u32),
    value: (u32, u32),
}

impl KeyEntry {
    pub(super) fn key<'r>(&self, raw: &'r str) -> &'r str {
        &raw[self.key.0 as usize..self.key.1 as usize]
    }

    pub(super) fn value<'r>(&self, raw: &'r str) -> &'r str {
        &raw[self.value.0 as usize..self.value.1 as usize]
    }
}

/// Validates `raw` as one JSON object and notes where each top-level value
/// is, so later reads scan one value instead of the whole line. The index is
/// `None` when a key has escapes (it could not be compared as written) or the
/// text is too large for 32-bit offsets; reads then scan the whole text.
pub(super) fn index_object(raw: &str) -> Result<Option<Box<[KeyEntry]>>, serde_json::Error> {
    if !raw.trim_start().starts_with('{') {
        return Err(de::Error::custom("expected a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    let index = de::Deserializer::deserialize_map(&mut de, IndexVisitor { base: raw })?;
    de.end()?;
    Ok(index.filter(|_| u32::try_from(raw.len()).is_ok()))
}

struct IndexVisitor<'r> {
    base: &'r str,
}

impl<'de> Visitor<'de> for IndexVisitor<'_> {
    type Value = Option<Box<[KeyEntry]>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let base = self.base.as_ptr() as usize;
        let offset = |text: &str| u32::try_from(text.as_ptr() as usize - base).unwrap_or(u32::MAX);
        let mut entries = Vec::with_capacity(16);
        let mut usable = true;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value = map.next_value::<&'de serde_json::value::RawValue>()?;
            match key {
                Cow::Borrowed(key) if usable => {
                    let (k, v) = (offset(key), offset(value.get()));
                    entries.push(KeyEntry {
                        key: (
                            k,
                            k.saturating_add(u32::try_from(key.len()).unwrap_or(u32::MAX)),
                        ),
                        value: (
                            v,
                            v.saturating_add(u32::try_from(value.get().len()).unwrap_or(u32::MAX)),
                        ),
                    });
                }
                _ => usable = false,
            }
        }
        Ok(usable.then(|| entries.into_boxed_slice()))
    }
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
    fn indexes_top_level_values() {
        let raw = r#" {"a":{"b":1}, "c" : "x\u0026y","a":[2]} "#;
        let index = index_object(raw).unwrap().unwrap();
        let pairs: Vec<(&str, &str)> = index.iter().map(|e| (e.key(raw), e.value(raw))).collect();
        assert_eq!(
            pairs,
            [("a", r#"{"b":1}"#), ("c", r#""x\u0026y""#), ("a", "[2]")]
        );
        // Escaped keys cannot be compared as written: no index, still valid.
        assert_eq!(index_object(r#"{"k\u0065y":1}"#).unwrap(), None);
        assert!(index_object("[1]").is_err());
        assert!(index_object(r#"{"a":1"#).is_err());
        assert!(index_object(r#"{"a":1} x"#).is_err());
    }

    #[test]
    fn the_last_of_duplicate_keys_wins() {
        assert_eq!(get(r#"{"a":1,"a":2}"#, "a"), Some(2.into()));
    }
}
