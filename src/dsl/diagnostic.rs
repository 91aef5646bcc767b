//! DSL text that came from the config file: compile it and, on error, point
//! at the exact file position. The DSL reports byte offsets into the string
//! value; when the value appears verbatim in the file (no TOML escapes) they
//! map one to one, otherwise the whole value is marked.

use toml::Spanned;

use super::{Expr, ParseError, Pattern, Template, TemplateKind};
use crate::config::{Diagnostic, SourceFile, string_content_start};

impl ParseError {
    /// The config diagnostic for an error in the string value `text`.
    pub fn to_diagnostic(&self, file: &SourceFile, text: &Spanned<String>) -> Diagnostic {
        let diagnostic = Diagnostic::new(format!("expected {}", self.expected));
        let diagnostic = match string_content_start(file, text) {
            Some(start) => diagnostic
                .at(start + self.offset..start + self.offset + self.len)
                .with_label(format!("found {}", self.found)),
            None => diagnostic.at(text.span()).with_label(format!(
                "found {} at byte {} of the value",
                self.found, self.offset
            )),
        };
        match &self.help {
            Some(help) => diagnostic.with_help(help.clone()),
            None => diagnostic,
        }
    }
}

impl Expr {
    /// Compiles an expression given as a config string value.
    pub fn from_config(file: &SourceFile, text: &Spanned<String>) -> Result<Self, Diagnostic> {
        Self::compile(text.get_ref()).map_err(|e| e.to_diagnostic(file, text))
    }
}

impl Template {
    /// Compiles a template given as a config string value.
    pub fn from_config(
        file: &SourceFile,
        text: &Spanned<String>,
        kind: TemplateKind,
    ) -> Result<Self, Diagnostic> {
        Self::compile(text.get_ref(), kind).map_err(|e| e.to_diagnostic(file, text))
    }
}

impl Pattern {
    /// Compiles a regex given as a config string value (a rule's `pattern`).
    pub fn from_config(file: &SourceFile, text: &Spanned<String>) -> Result<Self, Diagnostic> {
        Self::compile(text.get_ref()).map_err(|e| e.to_diagnostic(file, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile {
            name: "auditrail.toml".into(),
            text: text.into(),
        }
    }

    fn value(file: &SourceFile, key: &str) -> Spanned<String> {
        let de = toml::de::DeTable::parse(&file.text).expect("valid TOML");
        let item = de.get_ref().get(key).expect("key present").clone();
        let span = item.span();
        let text = match item.into_inner() {
            toml::de::DeValue::String(s) => s.into_owned(),
            _ => panic!("not a string"),
        };
        Spanned::new(span, text)
    }

    #[test]
    fn errors_point_at_the_file_position() {
        let file = file("# routing\ntag = 'audit.${objectRef.namespace ?? }'\n");
        let text = value(&file, "tag");
        let error = Template::from_config(&file, &text, TemplateKind::Plain).unwrap_err();
        let rendered = error.render(&file);
        assert!(
            rendered.starts_with("error: expected an expression after `??`\n"),
            "{rendered}"
        );
        assert!(rendered.contains("--> auditrail.toml:2:39"), "{rendered}");
        assert!(rendered.contains("^ found `}`"), "{rendered}");
    }

    #[test]
    fn escaped_values_mark_the_whole_value() {
        let file = file("tag = \"a\\u0041${\"\n");
        let text = value(&file, "tag");
        let error = Template::from_config(&file, &text, TemplateKind::Plain).unwrap_err();
        assert_eq!(error.span, Some(text.span()));
        assert_eq!(
            error.label.as_deref(),
            Some("found end of input at byte 4 of the value")
        );
    }
}
