//! A tail source's `tag`: fixed text, or a template with `${file}` (the file
//! name, e.g. `audit.log`) and `${path}` (the whole path with `/` turned into
//! `.`, e.g. `var.log.audit.log`), taken from the path the file had when it
//! was first opened.

use std::path::Path;

use crate::event::Tag;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    File,
    Path,
}

/// A parsed `tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TagTemplate {
    parts: Vec<Part>,
}

/// A `tag` with an unknown or unterminated `${...}`; `offset` is the byte
/// where the problem starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TemplateError {
    pub(super) offset: usize,
    pub(super) message: String,
}

impl TagTemplate {
    pub(super) fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut at = 0;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(TemplateError {
                    offset: at + start,
                    message: "`${` is not closed by `}`".into(),
                });
            };
            parts.push(match after[..end].trim() {
                "file" => Part::File,
                "path" => Part::Path,
                other => {
                    return Err(TemplateError {
                        offset: at + start,
                        message: format!(
                            "unknown `${{{other}}}` in a tail source's tag: only `${{file}}` and `${{path}}` are supported"
                        ),
                    });
                }
            });
            let consumed = start + 2 + end + 1;
            at += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// The tag for a file found at `path`.
    pub(super) fn render(&self, path: &Path) -> Tag {
        let mut tag = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => tag.push_str(text),
                Part::File => {
                    if let Some(name) = path.file_name() {
                        tag.push_str(&name.to_string_lossy());
                    }
                }
                Part::Path => {
                    let parts: Vec<_> = path
                        .iter()
                        .filter(|c| *c != "/")
                        .map(|c| c.to_string_lossy())
                        .collect();
                    tag.push_str(&parts.join("."));
                }
            }
        }
        Tag::from(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_and_path() {
        let t = TagTemplate::parse("audit.${file}").unwrap();
        assert_eq!(
            t.render(Path::new("/var/log/a.log")).as_str(),
            "audit.a.log"
        );
        let t = TagTemplate::parse("k.${ path }.x").unwrap();
        assert_eq!(
            t.render(Path::new("/var/log/a.log")).as_str(),
            "k.var.log.a.log.x"
        );
        let t = TagTemplate::parse("plain").unwrap();
        assert_eq!(t.render(Path::new("/x")).as_str(), "plain");
    }

    #[test]
    fn rejects_unknown_names() {
        let e = TagTemplate::parse("audit.${objectRef.namespace}").unwrap_err();
        assert_eq!(e.offset, 6);
        assert!(e.message.contains("`${file}`"), "{}", e.message);
        assert_eq!(TagTemplate::parse("a${file").unwrap_err().offset, 1);
    }
}
