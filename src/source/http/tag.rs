//! The `tag` of an http source: fixed, or a small template filled per request
//! from the request path or a header. Values come from the network, so each
//! is reduced to `[A-Za-z0-9_-]` (at most 64 characters): a client cannot
//! inject dots, slashes or unbounded text into tags (which may become file
//! names downstream).

use std::fmt::Write as _;

use axum::http::HeaderMap;

use crate::event::Tag;

/// Longest value one hole contributes.
const MAX_VALUE_LEN: usize = 64;
/// What an absent value becomes.
const NONE: &str = "none";

/// A parsed `tag` setting.
#[derive(Debug, Clone)]
pub(super) enum TagTemplate {
    /// No holes: every event shares one tag.
    Fixed(Tag),
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part {
    Text(String),
    /// `${path}`: every segment below the source's `path`, joined by `.`.
    Path,
    /// `${path[N]}`.
    PathSegment(usize),
    /// `${header.NAME}`.
    Header(axum::http::HeaderName),
}

/// Why a `tag` template was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum TemplateError {
    /// `audit.${path`.
    #[error("unclosed `${{` in `{0}`")]
    Unclosed(String),
    /// `${user}`.
    #[error("unknown hole `${{{0}}}`: expected `${{path}}`, `${{path[N]}}` or `${{header.NAME}}`")]
    Unknown(String),
}

impl TagTemplate {
    pub(super) fn parse(text: &str) -> Result<Self, TemplateError> {
        if !text.contains("${") {
            return Ok(Self::Fixed(Tag::new(text)));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed(text.to_owned()))?;
            parts.push(parse_hole(after[..end].trim())?);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self::Parts(parts))
    }

    /// The tag for one request; `below` is the request path below the
    /// source's `path`, without leading or trailing slashes.
    pub(super) fn render(&self, below: &str, headers: &HeaderMap) -> Tag {
        let parts = match self {
            Self::Fixed(tag) => return tag.clone(),
            Self::Parts(parts) => parts,
        };
        let mut out = String::new();
        let segments = || below.split('/').filter(|s| !s.is_empty());
        for part in parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Path => {
                    let mut any = false;
                    for (n, segment) in segments().enumerate() {
                        if n > 0 {
                            out.push('.');
                        }
                        push_sanitised(&mut out, segment);
                        any = true;
                    }
                    if !any {
                        out.push_str(NONE);
                    }
                }
                Part::PathSegment(index) => match segments().nth(*index) {
                    Some(segment) => push_sanitised(&mut out, segment),
                    None => out.push_str(NONE),
                },
                Part::Header(name) => match headers.get(name).and_then(|v| v.to_str().ok()) {
                    Some(value) if !value.trim().is_empty() => {
                        push_sanitised(&mut out, value.trim());
                    }
                    _ => out.push_str(NONE),
                },
            }
        }
        Tag::from(out)
    }
}

fn parse_hole(hole: &str) -> Result<Part, TemplateError> {
    let unknown = || TemplateError::Unknown(hole.to_owned());
    if hole == "path" {
        return Ok(Part::Path);
    }
    if let Some(index) = hole
        .strip_prefix("path[")
        .and_then(|rest| rest.strip_suffix(']'))
    {
        return index
            .trim()
            .parse()
            .map(Part::PathSegment)
            .map_err(|_| unknown());
    }
    if let Some(name) = hole.strip_prefix("header.") {
        return axum::http::HeaderName::try_from(name.trim())
            .map(Part::Header)
            .map_err(|_| unknown());
    }
    Err(unknown())
}

/// Appends `value` with every character outside `[A-Za-z0-9_-]` replaced by
/// `_`, cut at [`MAX_VALUE_LEN`] characters.
fn push_sanitised(out: &mut String, value: &str) {
    for c in value.chars().take(MAX_VALUE_LEN) {
        let c = if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c
        } else {
            '_'
        };
        let _ = out.write_char(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, below: &str, headers: &[(&'static str, &str)]) -> String {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        TagTemplate::parse(template)
            .unwrap()
            .render(below, &map)
            .to_string()
    }

    #[test]
    fn fixed_tags_are_used_as_written() {
        assert_eq!(render("audit.webhook", "x/y", &[]), "audit.webhook");
    }

    #[test]
    fn path_holes_take_sanitised_segments() {
        assert_eq!(render("audit.${path}", "prod/eu-1", &[]), "audit.prod.eu-1");
        assert_eq!(render("audit.${path[1]}", "prod/eu-1", &[]), "audit.eu-1");
        assert_eq!(render("audit.${path[5]}", "prod", &[]), "audit.none");
        assert_eq!(render("audit.${path}", "", &[]), "audit.none");
        assert_eq!(render("a.${path}", "..%2F/x.y", &[]), "a.___2F.x_y");
    }

    #[test]
    fn header_holes_take_sanitised_values() {
        let headers = [("x-cluster", "prod/../../etc")];
        assert_eq!(
            render("k.${header.x-cluster}", "", &headers),
            "k.prod_______etc"
        );
        assert_eq!(render("k.${header.x-other}", "", &headers), "k.none");
        let long = "a".repeat(500);
        assert_eq!(
            render("${header.x-cluster}", "", &[("x-cluster", &long)]).len(),
            MAX_VALUE_LEN
        );
    }

    #[test]
    fn bad_templates_are_rejected() {
        assert!(matches!(
            TagTemplate::parse("a.${path"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            TagTemplate::parse("a.${user}"),
            Err(TemplateError::Unknown(_))
        ));
        assert!(matches!(
            TagTemplate::parse("a.${path[x]}"),
            Err(TemplateError::Unknown(_))
        ));
    }
}
