//! Event tags: dot-separated names such as `audit.kube-system`, routed by
//! fluentd-style patterns. Cheap to clone: events of one source share one.

use std::fmt;
use std::sync::Arc;

/// An event's routing tag.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(Arc<str>);

/// Longest tag, in bytes: tags come from event content (`${path}`, a
/// namespace, a user name) and are kept per distinct value, so a hostile
/// value must not make them large. Kubernetes names stay far below it.
pub(crate) const MAX_TAG_LEN: usize = 1024;

impl Tag {
    /// A tag from any text: control characters (a newline in a namespace
    /// would forge log lines and escape patterns) become `_`, and text past
    /// [`MAX_TAG_LEN`] bytes is cut off at a character boundary.
    pub fn new(text: &str) -> Self {
        if text.len() <= MAX_TAG_LEN && !text.chars().any(char::is_control) {
            return Self(Arc::from(text));
        }
        let mut safe = String::with_capacity(text.len().min(MAX_TAG_LEN));
        for c in text.chars() {
            let c = if c.is_control() { '_' } else { c };
            if safe.len() + c.len_utf8() > MAX_TAG_LEN {
                break;
            }
            safe.push(c);
        }
        Self(Arc::from(safe))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The dot-separated parts (`tag_parts` in the DSL).
    pub fn parts(&self) -> std::str::Split<'_, char> {
        self.0.split('.')
    }
}

impl From<String> for Tag {
    fn from(text: String) -> Self {
        if text.len() <= MAX_TAG_LEN && !text.chars().any(char::is_control) {
            Self(Arc::from(text))
        } else {
            Self::new(&text)
        }
    }
}

impl From<&str> for Tag {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl std::borrow::Borrow<str> for Tag {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_underscores_and_long_tags_are_cut() {
        assert_eq!(Tag::new("audit.kube-system").as_str(), "audit.kube-system");
        assert_eq!(
            Tag::from("audit.a\nINFO forged\r\u{7}".to_owned()).as_str(),
            "audit.a_INFO forged__"
        );
        let long = format!("audit.{}", "é".repeat(MAX_TAG_LEN));
        let tag = Tag::new(&long);
        assert!(tag.as_str().len() <= MAX_TAG_LEN);
        assert!(tag.as_str().len() > MAX_TAG_LEN - 2);
        assert!(long.starts_with(tag.as_str()));
    }
}
