//! A record is one event's JSON object. It keeps the bytes it arrived with
//! until a stage changes it, so an untouched event leaves byte for byte as it
//! came; fields are parsed only when a stage reads them.

use std::borrow::Cow;
use std::cell::OnceCell;

use bytes::Bytes;
use bytestring::ByteString;
use serde_json::{Map, Value};

use super::json_scan::{self, JsonError, KeyEntry};
use super::path::{FieldPath, PathSegment};
use super::raw_lookup;

/// Why a line read by a source is not a record.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("invalid UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    #[error("not a JSON object: {0}")]
    NotJson(JsonError),
}

/// One event's JSON object.
#[derive(Clone, Debug)]
pub struct Record {
    /// The original text (a validated JSON object), until the first change.
    raw: Option<ByteString>,
    /// Where the top-level values sit in `raw`, found while validating it.
    index: Option<Box<[KeyEntry]>>,
    /// The parsed object, built on first full read or first change.
    fields: OnceCell<Map<String, Value>>,
}

impl Record {
    /// Wraps text that is one JSON object, validating it.
    pub fn from_json(raw: ByteString) -> Result<Self, JsonError> {
        let scanned = json_scan::index_object(raw.as_bytes())?;
        Ok(Self {
            raw: Some(raw),
            index: scanned.index,
            fields: OnceCell::new(),
        })
    }

    /// Wraps a line read as bytes that must be one JSON object in UTF-8.
    /// Sources use this: the JSON check also tells when the line is ASCII,
    /// which saves a second pass for UTF-8 on most lines.
    pub fn from_json_line(line: Bytes) -> Result<Self, LineError> {
        let scanned = json_scan::index_object(&line).map_err(|e| {
            // Report undecodable bytes as such, whatever else is wrong.
            match std::str::from_utf8(&line) {
                Err(utf8) => LineError::NotUtf8(utf8),
                Ok(_) => LineError::NotJson(e),
            }
        })?;
        if !scanned.ascii {
            std::str::from_utf8(&line).map_err(LineError::NotUtf8)?;
        }
        // SAFETY: the bytes are UTF-8: all ASCII, or checked just above.
        let raw = unsafe { ByteString::from_bytes_unchecked(line) };
        Ok(Self {
            raw: Some(raw),
            index: scanned.index,
            fields: OnceCell::new(),
        })
    }

    /// A record built by a stage rather than read from input.
    pub fn from_fields(fields: Map<String, Value>) -> Self {
        Self {
            raw: None,
            index: None,
            fields: OnceCell::from(fields),
        }
    }

    /// The original text, if the record is unchanged.
    pub fn raw(&self) -> Option<&str> {
        self.raw.as_deref()
    }

    /// The value at `path`. Reads from the parsed object when there is one,
    /// otherwise scans the original text for just that field.
    pub fn get(&self, path: &FieldPath) -> Option<Cow<'_, Value>> {
        if let Some(fields) = self.fields.get() {
            return lookup_parsed(fields, path.segments()).map(Cow::Borrowed);
        }
        let raw = self.raw.as_deref()?;
        let segments = path.segments();
        // Scan only the top-level value the path starts in, when known.
        let (text, rest) = match (&self.index, segments.first()) {
            (Some(index), Some(PathSegment::Key(key))) => {
                (indexed_value(raw, index, key)?, &segments[1..])
            }
            (Some(_), Some(PathSegment::Index(_))) => return None,
            _ => (raw, segments),
        };
        // The text was validated at construction, so a scan cannot fail.
        raw_lookup::lookup(text, rest)
            .ok()
            .flatten()
            .map(Cow::Owned)
    }

    /// The text of a string at a top-level `path`, read straight from the
    /// unchanged record when it has no escapes; `None` means "ask
    /// [`Record::get`]". Sources read every event's time this way without
    /// building a `Value`.
    pub fn plain_top_level_str(&self, path: &FieldPath) -> Option<&str> {
        let (raw, index) = (self.raw.as_deref()?, self.index.as_deref()?);
        let [PathSegment::Key(key)] = path.segments() else {
            return None;
        };
        let text = indexed_value(raw, index, key)?;
        let text = text.strip_prefix('"')?.strip_suffix('"')?;
        memchr::memchr(b'\\', text.as_bytes())
            .is_none()
            .then_some(text)
    }

    /// The whole object, parsed on first use.
    pub fn fields(&self) -> &Map<String, Value> {
        self.fields
            .get_or_init(|| parse_object(self.raw.as_deref()))
    }

    /// The object for changing; the original text is let go.
    pub fn fields_mut(&mut self) -> &mut Map<String, Value> {
        self.fields();
        self.raw = None;
        self.index = None;
        self.fields
            .get_mut()
            .expect("fields() just initialised the cell")
    }

    /// Whether the record still holds its original text unchanged.
    pub fn is_unchanged(&self) -> bool {
        self.raw.is_some()
    }

    /// Sets the value at `path`, creating intermediate objects. Returns false
    /// when the path runs through a value that is not an object or array.
    pub fn set(&mut self, path: &FieldPath, value: Value) -> bool {
        let Some((last, parents)) = path.segments().split_last() else {
            return false;
        };
        let mut current = ValueMut::Map(self.fields_mut());
        for segment in parents {
            current = match current.child_or_insert(segment) {
                Some(next) => ValueMut::Value(next),
                None => return false,
            };
        }
        current.put(last, value)
    }

    /// Removes and returns the value at `path`.
    pub fn remove(&mut self, path: &FieldPath) -> Option<Value> {
        let (last, parents) = path.segments().split_last()?;
        // Look before touching, so a miss keeps the original bytes.
        self.get(path)?;
        let mut current = ValueMut::Map(self.fields_mut());
        for segment in parents {
            current = ValueMut::Value(current.child(segment)?);
        }
        current.take(last)
    }

    /// Appends the record as one line of JSON (no newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match (&self.raw, self.fields.get()) {
            (Some(raw), _) => out.extend_from_slice(raw.as_bytes()),
            (None, Some(fields)) => {
                serde_json::to_writer(&mut *out, fields)
                    .expect("serialising a serde_json::Map into a Vec cannot fail");
            }
            (None, None) => out.extend_from_slice(b"{}"),
        }
    }

    /// The record as a JSON value.
    pub fn into_value(self) -> Value {
        let raw = self.raw;
        Value::Object(
            self.fields
                .into_inner()
                .unwrap_or_else(|| parse_object(raw.as_deref())),
        )
    }
}

/// The text of the top-level value at `key` (the last, if it repeats, as
/// when the record is parsed).
fn indexed_value<'r>(raw: &'r str, index: &[KeyEntry], key: &str) -> Option<&'r str> {
    let entry = index.iter().rev().find(|e| e.key(raw) == key)?;
    Some(entry.value(raw))
}

fn parse_object(raw: Option<&str>) -> Map<String, Value> {
    raw.and_then(|raw| serde_json::from_str(raw).ok())
        .unwrap_or_default()
}

fn lookup_parsed<'v>(fields: &'v Map<String, Value>, path: &[PathSegment]) -> Option<&'v Value> {
    let (first, rest) = path.split_first()?;
    let PathSegment::Key(key) = first else {
        return None;
    };
    let mut value = fields.get(&**key)?;
    for segment in rest {
        value = match segment {
            PathSegment::Key(key) => value.as_object()?.get(&**key)?,
            PathSegment::Index(index) => value.as_array()?.get(*index)?,
        };
    }
    Some(value)
}

/// A mutable position while walking a path for `set`/`remove`.
enum ValueMut<'v> {
    Map(&'v mut Map<String, Value>),
    Value(&'v mut Value),
}

impl<'v> ValueMut<'v> {
    fn child(self, segment: &PathSegment) -> Option<&'v mut Value> {
        match (self, segment) {
            (ValueMut::Map(map), PathSegment::Key(key)) => map.get_mut(&**key),
            (ValueMut::Value(Value::Object(map)), PathSegment::Key(key)) => map.get_mut(&**key),
            (ValueMut::Value(Value::Array(items)), PathSegment::Index(i)) => items.get_mut(*i),
            _ => None,
        }
    }

    fn child_or_insert(self, segment: &PathSegment) -> Option<&'v mut Value> {
        let map = match self {
            ValueMut::Map(map) => map,
            ValueMut::Value(value) => {
                if value.is_null() {
                    *value = Value::Object(Map::new());
                }
                match (value, segment) {
                    (Value::Object(map), _) => map,
                    (Value::Array(items), PathSegment::Index(i)) => return items.get_mut(*i),
                    _ => return None,
                }
            }
        };
        match segment {
            PathSegment::Key(key) => Some(
                map.entry(key.to_string())
                    .or_insert_with(|| Value::Object(Map::new())),
            ),
            PathSegment::Index(_) => None,
        }
    }

    fn put(self, segment: &PathSegment, value: Value) -> bool {
        match (self, segment) {
            (ValueMut::Map(map), PathSegment::Key(key))
            | (ValueMut::Value(Value::Object(map)), PathSegment::Key(key)) => {
                map.insert(key.to_string(), value);
                true
            }
            (ValueMut::Value(Value::Array(items)), PathSegment::Index(i)) if *i < items.len() => {
                items[*i] = value;
                true
            }
            _ => false,
        }
    }

    fn take(self, segment: &PathSegment) -> Option<Value> {
        match (self, segment) {
            (ValueMut::Map(map), PathSegment::Key(key))
            | (ValueMut::Value(Value::Object(map)), PathSegment::Key(key)) => {
                map.shift_remove(&**key)
            }
            (ValueMut::Value(Value::Array(items)), PathSegment::Index(i)) if *i < items.len() => {
                Some(items.remove(*i))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> Record {
        Record::from_json(ByteString::from(text.to_owned())).unwrap()
    }

    fn path(text: &str) -> FieldPath {
        FieldPath::parse(text).unwrap()
    }

    fn json(r: &Record) -> String {
        let mut out = Vec::new();
        r.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn unchanged_record_is_written_byte_for_byte() {
        let text = r#"{ "b":1,  "a":"x\u0026y" ,"z":[1 ,2]}"#;
        let r = record(text);
        assert_eq!(r.get(&path("a")).as_deref(), Some(&Value::from("x&y")));
        let _ = r.fields();
        assert_eq!(json(&r), text);
    }

    #[test]
    fn changed_record_keeps_key_order() {
        let mut r = record(r#"{"b":1,"a":2,"c":3}"#);
        assert!(r.set(&path("a"), Value::from("x")));
        assert!(r.set(&path("d.e"), Value::from(true)));
        assert_eq!(r.remove(&path("b")), Some(Value::from(1)));
        assert_eq!(json(&r), r#"{"a":"x","c":3,"d":{"e":true}}"#);
    }

    #[test]
    fn removing_a_missing_field_keeps_the_original_bytes() {
        let mut r = record(r#"{"a": 1}"#);
        assert_eq!(r.remove(&path("b.c")), None);
        assert!(r.is_unchanged());
    }

    #[test]
    fn set_through_a_scalar_fails_without_panicking() {
        let mut r = record(r#"{"a":1,"l":[1]}"#);
        assert!(!r.set(&path("a.b"), Value::Null));
        assert!(r.set(&path("l[0]"), Value::from(2)));
        assert!(!r.set(&path("l[3]"), Value::from(2)));
        assert_eq!(r.get(&path("l[0]")).as_deref(), Some(&Value::from(2)));
    }

    #[test]
    fn plain_top_level_strings_are_read_from_the_original_text() {
        let mut r = record(r#"{"t":"x","t":"2026","e":"a\u0026b","n":5,"o":{"t":"y"}}"#);
        assert_eq!(r.plain_top_level_str(&path("t")), Some("2026"));
        for other in ["e", "n", "o", "o.t", "missing"] {
            assert_eq!(r.plain_top_level_str(&path(other)), None, "{other}");
        }
        assert!(r.set(&path("n"), Value::from(6)));
        assert_eq!(
            r.plain_top_level_str(&path("t")),
            None,
            "changed records parse"
        );
    }

    #[test]
    fn lines_are_checked_for_utf8_only_where_it_matters() {
        let line = |b: &[u8]| Record::from_json_line(Bytes::copy_from_slice(b));
        assert!(line(br#"{"a":"caf\u00e9"}"#).is_ok());
        assert_eq!(
            line("{\"a\":\"café\"}".as_bytes()).unwrap().raw(),
            Some(r#"{"a":"café"}"#)
        );
        assert!(matches!(
            line(b"{\"a\":\"caf\xe9\"}"),
            Err(LineError::NotUtf8(_))
        ));
        assert!(matches!(line(b"\xff\xfe{}"), Err(LineError::NotUtf8(_))));
        assert!(matches!(line(b"{\"a\":}"), Err(LineError::NotJson(_))));
        assert_eq!(
            line(b"{\"a\" 1}").unwrap_err().to_string(),
            "not a JSON object: expected `:` at column 6"
        );
    }

    #[test]
    fn rejects_non_objects() {
        for bad in ["[1]", "1", "\"s\"", "{", ""] {
            assert!(Record::from_json(ByteString::from(bad.to_owned())).is_err());
        }
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;
    use crate::event::PathSegment;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z&<>\"\\\\]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-c.]{1,2}", inner), 0..4)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn paths() -> impl Strategy<Value = Vec<PathSegment>> {
        prop::collection::vec(
            prop_oneof![
                "[a-c.]{1,2}".prop_map(|k| PathSegment::Key(k.into())),
                (0usize..3).prop_map(PathSegment::Index),
            ],
            1..4,
        )
    }

    proptest! {
        /// Reads of an unchanged record (through the top-level index and a
        /// scan of one value) agree with reads of the parsed object.
        #[test]
        fn indexed_reads_agree_with_parsed_reads(
            object in prop::collection::vec(("[a-c.]{1,2}", json_value()), 0..6),
            path in paths(),
            spaced in any::<bool>(),
        ) {
            let object: Map<String, Value> = object.into_iter().collect();
            let text = if spaced {
                serde_json::to_string_pretty(&object).unwrap()
            } else {
                serde_json::to_string(&object).unwrap()
            };
            let path = FieldPath::new(path);
            let raw = Record::from_json(ByteString::from(text)).unwrap();
            let parsed = Record::from_fields(object);
            prop_assert_eq!(raw.get(&path), parsed.get(&path));
        }

        /// A line of any bytes is a record exactly when it is UTF-8 and
        /// serde_json reads it as an object.
        #[test]
        fn lines_are_records_when_utf8_json_objects(
            bytes in prop::collection::vec(
                prop_oneof![Just(b'{'), Just(b'}'), Just(b'"'), Just(b':'), Just(b'a'), Just(0xc3), Just(0xa9), Just(0xff), any::<u8>()],
                0..24,
            ),
            in_string in any::<bool>(),
        ) {
            // Inside a string, most bytes are allowed and UTF-8 decides.
            let bytes = if in_string {
                [&br#"{"k":""#[..], &bytes, b"\"}"].concat()
            } else {
                bytes
            };
            let expected = std::str::from_utf8(&bytes)
                .is_ok_and(|text| serde_json::from_str::<Map<String, Value>>(text).is_ok());
            let record = Record::from_json_line(Bytes::from(bytes.clone()));
            prop_assert_eq!(record.is_ok(), expected, "{:?}", record);
            if let Ok(record) = record {
                prop_assert_eq!(record.raw().map(str::as_bytes), Some(&bytes[..]));
            }
        }

        /// Arbitrary text never panics: it is a record or a clean error.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,64}", path in paths()) {
            if let Ok(record) = Record::from_json(ByteString::from(text)) {
                let _ = record.get(&FieldPath::new(path));
                let _ = record.fields();
            }
        }
    }
}
