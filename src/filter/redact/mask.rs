//! What a redacted value becomes: a fixed marker, or a keyed hash so equal values
//! can still be matched across events without being readable.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Default replacement text.
pub(super) const DEFAULT_MARKER: &str = "<redacted>";

/// Bytes of the HMAC-SHA256 kept (hex-encoded, so twice as many characters): 128
/// bits, plenty to tell values apart, and short in every event.
const HASH_BYTES: usize = 16;

/// How values are replaced.
#[derive(Clone)]
pub(super) enum Mask {
    /// Every value becomes this string.
    Marker(String),
    /// Every value becomes `hmac-sha256:<32 hex digits>` of its text under the key.
    Hmac(Box<[u8]>),
}

impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never print the key.
            Self::Marker(marker) => f.debug_tuple("Marker").field(marker).finish(),
            Self::Hmac(_) => f.write_str("Hmac(<key>)"),
        }
    }
}

impl Mask {
    /// The replacement for `value`: strings are hashed as their text, other values
    /// as their JSON text.
    pub(super) fn replace(&self, value: &Value) -> Value {
        match self {
            Self::Marker(marker) => Value::String(marker.clone()),
            Self::Hmac(key) => {
                let text;
                let bytes = match value {
                    Value::String(s) => s.as_bytes(),
                    other => {
                        text = other.to_string();
                        text.as_bytes()
                    }
                };
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
                    // HMAC takes keys of any length; should that ever change, no value
                    // may leak through: fall back to the marker.
                    return Value::String(DEFAULT_MARKER.to_owned());
                };
                mac.update(bytes);
                let digest = mac.finalize().into_bytes();
                let mut out = String::with_capacity(12 + HASH_BYTES * 2);
                out.push_str("hmac-sha256:");
                for byte in &digest[..HASH_BYTES] {
                    out.push_str(&format!("{byte:02x}"));
                }
                Value::String(out)
            }
        }
    }

    /// Replaces `value` in place unless it is `null` (a merge patch's "delete this
    /// key" holds no secret); returns whether it changed.
    pub(super) fn apply(&self, value: &mut Value) -> bool {
        if value.is_null() {
            return false;
        }
        let replacement = self.replace(value);
        if *value == replacement {
            return false;
        }
        *value = replacement;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_is_keyed_stable_and_truncated() {
        let a = Mask::Hmac(b"key-one".to_vec().into_boxed_slice());
        let b = Mask::Hmac(b"key-two".to_vec().into_boxed_slice());
        let value = Value::from("hunter2");
        let hashed = a.replace(&value);
        let text = hashed.as_str().expect("string");
        assert!(text.starts_with("hmac-sha256:"), "{text}");
        assert_eq!(text.len(), "hmac-sha256:".len() + 32);
        assert_eq!(a.replace(&value), hashed, "same key, same value, same hash");
        assert_ne!(b.replace(&value), hashed, "another key hashes differently");
        assert_ne!(a.replace(&Value::from("hunter3")), hashed);
    }

    /// RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
    #[test]
    fn hmac_matches_the_rfc_4231_vector() {
        let mask = Mask::Hmac(b"Jefe".to_vec().into_boxed_slice());
        let out = mask.replace(&Value::from("what do ya want for nothing?"));
        assert_eq!(out, "hmac-sha256:5bdcc146bf60754e6a042426089575c7");
    }

    #[test]
    fn marker_replaces_anything_but_null() {
        let mask = Mask::Marker("<x>".into());
        let mut value = serde_json::json!({"a": 1});
        assert!(mask.apply(&mut value));
        assert_eq!(value, "<x>");
        let mut null = Value::Null;
        assert!(!mask.apply(&mut null));
        assert!(format!("{:?}", Mask::Hmac(b"k".to_vec().into())).contains("<key>"));
    }
}
