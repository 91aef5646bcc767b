//! Field paths into a record: `objectRef.namespace`, `user.groups[0]`,
//! `annotations."authorization.k8s.io/decision"`. Paths are split once, at
//! config load, and then walked per event without allocating.

use std::fmt;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// An object key.
    Key(Box<str>),
    /// An array index.
    Index(usize),
}

/// A pre-split path to a field of a JSON record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldPath {
    segments: Box<[PathSegment]>,
}

/// Why a dotted path given in the config could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {offset} of field path `{path}`")]
pub struct PathError {
    pub path: String,
    pub offset: usize,
    pub message: &'static str,
}

impl FieldPath {
    pub fn new(segments: Vec<PathSegment>) -> Self {
        Self {
            segments: segments.into_boxed_slice(),
        }
    }

    pub fn segments(&self) -> &[PathSegment] {
        &self.segments
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Splits the path syntax used by config keys such as `time_key` and
    /// `remove.fields`: keys separated by `.`, `"quoted.keys"`, and `[N]`.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let err = |offset, message| PathError {
            path: text.to_owned(),
            offset,
            message,
        };
        let bytes = text.as_bytes();
        let mut segments = Vec::new();
        let mut i = 0;
        let mut expect_key = true;
        while i < bytes.len() {
            match bytes[i] {
                b'[' => {
                    let close = text[i..].find(']').ok_or_else(|| err(i, "expected `]`"))?;
                    let index = text[i + 1..i + close]
                        .parse()
                        .map_err(|_| err(i + 1, "expected an array index"))?;
                    segments.push(PathSegment::Index(index));
                    i += close + 1;
                    expect_key = false;
                }
                b'.' if !expect_key => {
                    i += 1;
                    expect_key = true;
                }
                b'"' if expect_key => {
                    let close = text[i + 1..]
                        .find('"')
                        .ok_or_else(|| err(i, "expected a closing `\"`"))?;
                    segments.push(PathSegment::Key(text[i + 1..i + 1 + close].into()));
                    i += close + 2;
                    expect_key = false;
                }
                _ if expect_key => {
                    let end = text[i..]
                        .find(['.', '[', '"'])
                        .map_or(text.len(), |n| i + n);
                    if end == i {
                        return Err(err(i, "expected a field name"));
                    }
                    segments.push(PathSegment::Key(text[i..end].into()));
                    i = end;
                    expect_key = false;
                }
                _ => return Err(err(i, "expected `.` or `[`")),
            }
        }
        if expect_key {
            return Err(err(text.len(), "expected a field name"));
        }
        Ok(Self::new(segments))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, segment) in self.segments.iter().enumerate() {
            match segment {
                PathSegment::Key(key) => {
                    if n > 0 {
                        f.write_str(".")?;
                    }
                    let plain = !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if plain {
                        f.write_str(key)?;
                    } else {
                        write!(f, "\"{key}\"")?;
                    }
                }
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for FieldPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(path: &FieldPath) -> Vec<String> {
        path.segments()
            .iter()
            .map(|s| match s {
                PathSegment::Key(k) => k.to_string(),
                PathSegment::Index(i) => format!("#{i}"),
            })
            .collect()
    }

    #[test]
    fn splits_dotted_quoted_and_indexed_paths() {
        let p = FieldPath::parse(r#"annotations."authorization.k8s.io/decision""#).unwrap();
        assert_eq!(keys(&p), ["annotations", "authorization.k8s.io/decision"]);
        let p = FieldPath::parse("user.groups[0]").unwrap();
        assert_eq!(keys(&p), ["user", "groups", "#0"]);
        let p = FieldPath::parse("items[2].metadata").unwrap();
        assert_eq!(keys(&p), ["items", "#2", "metadata"]);
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in ["", "a.", ".a", "a..b", "a[x]", "a[1", "\"a", "a\"b\""] {
            assert!(FieldPath::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["a.b", "user.groups[0]", r#"annotations."a.b/c""#] {
            let p = FieldPath::parse(text).unwrap();
            assert_eq!(FieldPath::parse(&p.to_string()).unwrap(), p);
        }
    }
}
