//! Durations (`"500ms"`, `"30s"`, `"1h30m"`) and sizes (`"100MiB"`, `"10MB"`)
//! as the config writes them: strings with units, never bare numbers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, de};

/// A duration written with units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

/// A byte size written with units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }
    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "expected a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\", found {text:?}"
            )
        };
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(expected());
        }
        let mut total = std::time::Duration::ZERO;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(expected)?;
            let number: f64 = rest[..digits].parse().map_err(|_| expected())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let seconds = match &rest[..unit_len] {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                _ => return Err(expected()),
            };
            total +=
                std::time::Duration::try_from_secs_f64(number * seconds).map_err(|_| expected())?;
            rest = &rest[unit_len..];
        }
        Ok(Self(total))
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "expected a size such as \"512KiB\", \"100MiB\", \"1GB\" or \"4096B\", found {text:?}"
            )
        };
        let trimmed = text.trim();
        let digits = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        if digits == 0 {
            return Err(expected());
        }
        let number: f64 = trimmed[..digits].parse().map_err(|_| expected())?;
        let factor: u64 = match trimmed[digits..].trim() {
            "" | "B" => 1,
            "KB" | "kB" | "K" | "k" => 1_000,
            "MB" | "M" => 1_000_000,
            "GB" | "G" => 1_000_000_000,
            "TB" | "T" => 1_000_000_000_000,
            "KiB" | "Ki" => 1 << 10,
            "MiB" | "Mi" => 1 << 20,
            "GiB" | "Gi" => 1 << 30,
            "TiB" | "Ti" => 1 << 40,
            _ => return Err(expected()),
        };
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let bytes = (number * factor as f64).round() as u64;
        Ok(Self(bytes))
    }
}

impl ByteSize {
    /// The size as a `usize` for buffer limits (saturating on 32-bit).
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

struct FromStrVisitor<T>(std::marker::PhantomData<T>, &'static str);

impl<T: FromStr<Err = String>> de::Visitor<'_> for FromStrVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FromStrVisitor(
            std::marker::PhantomData,
            "a duration string such as \"30s\"",
        ))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FromStrVisitor(
            std::marker::PhantomData,
            "a size string such as \"100MiB\"",
        ))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        let d = |t: &str| t.parse::<Duration>().map(|d| d.0.as_millis());
        assert_eq!(d("500ms"), Ok(500));
        assert_eq!(d("30s"), Ok(30_000));
        assert_eq!(d("1h30m"), Ok(5_400_000));
        assert_eq!(d("1.5s"), Ok(1_500));
        for bad in ["", "30", "s", "10 parsecs", "-1s", "1x"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_sizes() {
        let s = |t: &str| t.parse::<ByteSize>().map(|s| s.0);
        assert_eq!(s("100MiB"), Ok(100 << 20));
        assert_eq!(s("10MB"), Ok(10_000_000));
        assert_eq!(s("4096"), Ok(4096));
        assert_eq!(s("1.5KiB"), Ok(1536));
        for bad in ["", "MiB", "10 lightyears", "-1B"] {
            assert!(s(bad).is_err(), "{bad}");
        }
    }
}
