//! Event tags: dot-separated names such as `audit.kube-system`, routed by
//! fluentd-style patterns. Cheap to clone: events of one source share one.

use std::fmt;
use std::sync::Arc;

/// An event's routing tag.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(Arc<str>);

impl Tag {
    pub fn new(text: &str) -> Self {
        Self(Arc::from(text))
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
        Self(Arc::from(text))
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
