//! Config errors as data (where, what, a hint) and the one renderer that
//! turns them into `file:line:col` reports with the offending line and a caret.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// The text of a config file, for locating spans.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: Arc<str>,
    pub text: Arc<str>,
}

/// One problem found in a config file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub message: String,
    pub span: Option<Range<usize>>,
    /// What was found at the span, shown under the caret.
    pub label: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: None,
            label: None,
            help: None,
        }
    }

    #[must_use]
    pub fn at(mut self, span: Range<usize>) -> Self {
        self.span = Some(span);
        self
    }

    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Renders the diagnostic against the file it came from.
    pub fn render(&self, file: &SourceFile) -> String {
        self.render_as("error", file)
    }

    /// Renders a problem that does not stop the config from loading.
    pub fn render_warning(&self, file: &SourceFile) -> String {
        self.render_as("warning", file)
    }

    fn render_as(&self, level: &str, file: &SourceFile) -> String {
        let mut out = format!("{level}: {}\n", self.message);
        if let Some(span) = &self.span {
            let (line, column) = line_column(&file.text, span.start);
            let line_text = mask_secrets(file.text.lines().nth(line - 1).unwrap_or(""));
            let line_text = line_text.as_ref();
            let gutter = " ".repeat(line.to_string().len());
            let width = span
                .end
                .saturating_sub(span.start)
                .clamp(1, line_text.len().saturating_sub(column - 1).max(1));
            let pad: String = line_text
                .chars()
                .take(column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("{gutter}--> {}:{line}:{column}\n", file.name));
            out.push_str(&format!(
                "{gutter} |\n{line} | {line_text}\n{gutter} | {pad}"
            ));
            out.push_str(&"^".repeat(width));
            if let Some(label) = &self.label {
                out.push(' ');
                out.push_str(label);
            }
            out.push('\n');
        } else {
            out.push_str(&format!("  --> {}\n", file.name));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("  = help: {help}\n"));
        }
        out
    }
}

/// A config line with the values of secret-bearing keys (`password`,
/// `token`, `api_key`, `secret`, ... but not `*_file` paths) starred out,
/// character for character so a caret under the line still points right:
/// a diagnostic about a typo next to a password must not print it.
pub(crate) fn mask_secrets(line: &str) -> std::borrow::Cow<'_, str> {
    static SECRET: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"(?i)([A-Za-z0-9_-]*(?:pass|pwd|token|secret|api_?key|credential)[A-Za-z0-9_-]*)["']?\s*=\s*("(?:[^"\\]|\\.)*"?|'[^']*'?|[^\s,}\]]+)"#,
        )
        .expect("a valid pattern")
    });
    if !SECRET.is_match(line) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut masked = line.to_owned();
    for found in SECRET.captures_iter(line) {
        let (Some(key), Some(value)) = (found.get(1), found.get(2)) else {
            continue;
        };
        let key = key.as_str().to_ascii_lowercase();
        if key.ends_with("_file") || key.ends_with("_path") {
            continue;
        }
        let text = value.as_str();
        let quote = text.starts_with(['"', '\'']) as usize;
        let inner_end = if quote == 1 && text.len() > 1 && text.ends_with(&text[..1]) {
            text.len() - 1
        } else {
            text.len()
        };
        let stars: String = text[quote..inner_end].chars().map(|_| '*').collect();
        let start = value.start() + quote;
        let end = value.start() + inner_end;
        // Same number of characters: the caret column stays right.
        masked.replace_range(start..end, &stars);
    }
    std::borrow::Cow::Owned(masked)
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Every problem found in one config file.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub file: SourceFile,
    pub items: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, item) in self.items.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            f.write_str(item.render(&self.file).trim_end())?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest of `candidates` to a misspelt `word`, if any is close enough.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    let near = candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(distance, c)| *distance <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c);
    // A key written without its suffix or prefix (`ca` for `ca_file`) is
    // too far by edit distance, but unambiguous when one key has it as a part.
    near.or_else(|| {
        let mut parts = candidates
            .iter()
            .filter(|c| c.split('_').any(|part| part == word) && **c != word);
        match (parts.next(), parts.next()) {
            (Some(only), None) => Some(*only),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_keys_and_keys_with_the_word_as_a_part() {
        let keys = ["ca_file", "cert_file", "key_file", "insecure_skip_verify"];
        assert_eq!(closest("ca_fle", keys), Some("ca_file"));
        assert_eq!(closest("ca", keys), Some("ca_file"));
        assert_eq!(closest("file", keys), None, "ambiguous");
        assert_eq!(closest("password", keys), None);
    }

    #[test]
    fn secret_values_are_starred_out_and_paths_kept() {
        assert_eq!(
            mask_secrets(
                r#"auth = { usr = "elastic", passwd = "hunter2", password_file = "/run/pw" }"#
            ),
            r#"auth = { usr = "elastic", passwd = "*******", password_file = "/run/pw" }"#
        );
        assert_eq!(mask_secrets("api_key = 'c2VjcmV0'"), "api_key = '********'");
        assert_eq!(mask_secrets("bearer_token = abc"), "bearer_token = ***");
        assert_eq!(mask_secrets(r#""token" = "é1""#), r#""token" = "**""#);
        assert_eq!(mask_secrets(r#"tag = "audit""#), r#"tag = "audit""#);
    }

    #[test]
    fn line_and_column_are_one_based_in_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 9), (2, 3));
    }

    #[test]
    fn renders_location_line_and_caret() {
        let file = SourceFile {
            name: "x.toml".into(),
            text: "[[source]]\npathz = 1\n".into(),
        };
        let d = Diagnostic::new("unknown key `pathz`")
            .at(11..16)
            .with_label("not a key of a `tail` source")
            .with_help("did you mean `paths`?");
        let text = d.render(&file);
        assert!(text.contains("--> x.toml:2:1"), "{text}");
        assert!(text.contains("2 | pathz = 1"), "{text}");
        assert!(text.contains("^^^^^ not a key"), "{text}");
        assert!(text.contains("help: did you mean `paths`?"), "{text}");
    }

    #[test]
    fn suggests_close_names_only() {
        let keys = ["paths", "exclude", "format"];
        assert_eq!(closest("pathz", keys), Some("paths"));
        assert_eq!(closest("fromat", keys), Some("format"));
        assert_eq!(closest("zzzzzz", keys), None);
    }
}
