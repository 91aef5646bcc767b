//! fluentd tag patterns: `a.b`, `*` (one part), `**` (zero or more parts, so
//! `a.**` matches `a`), `{a,b}` alternatives, `\` escapes, `/regex/`, and
//! several patterns separated by spaces. Compiled once to one anchored regex;
//! the router caches decisions per tag, so matching is off the hot path.

use std::fmt;

use regex::Regex;

/// A compiled `match` pattern.
#[derive(Clone)]
pub struct TagPattern {
    text: String,
    regex: Regex,
}

/// Why a pattern does not compile; `offset` is a byte offset into its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PatternError {
    pub offset: usize,
    pub message: String,
}

impl TagPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut alternatives = Vec::new();
        let mut offset = 0;
        for piece in text.split(' ') {
            if !piece.is_empty() {
                alternatives.push(compile_one(piece, offset)?);
            }
            offset += piece.len() + 1;
        }
        if alternatives.is_empty() {
            return Err(PatternError {
                offset: 0,
                message: "expected a tag pattern such as `audit.**`, found nothing".into(),
            });
        }
        let regex = Regex::new(&format!("(?s)^(?:{})$", alternatives.join("|"))).map_err(|e| {
            PatternError {
                offset: 0,
                message: format!("invalid pattern: {e}"),
            }
        })?;
        Ok(Self {
            text: text.to_owned(),
            regex,
        })
    }

    pub fn matches(&self, tag: &str) -> bool {
        self.regex.is_match(tag)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Each space-separated pattern with its alternatives expanded, cut at
    /// the first wildcard: every tag this pattern accepts starts with one of
    /// them. Used to tell whether a dynamic tag could ever reach it.
    pub fn literal_prefixes(&self) -> Vec<String> {
        let mut prefixes = Vec::new();
        for piece in self.text.split(' ').filter(|p| !p.is_empty()) {
            if piece.starts_with('/') {
                prefixes.push(String::new());
                continue;
            }
            for expanded in expand_braces(piece) {
                let cut = expanded.find(['*', '\\']).unwrap_or(expanded.len());
                let mut prefix = expanded[..cut].to_owned();
                // `a.**` also accepts `a`: drop the dot before a leading `**`.
                if expanded[cut..].starts_with("**") && prefix.ends_with('.') {
                    prefix.pop();
                }
                prefixes.push(prefix);
            }
        }
        prefixes
    }
}

fn expand_braces(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_owned()];
    };
    let mut depth = 0;
    let mut close = None;
    for (i, c) in pattern[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![pattern.to_owned()];
    };
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    let mut options = Vec::new();
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                options.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    options.push(&body[start..]);
    for option in options {
        out.extend(expand_braces(&format!("{head}{option}{tail}")));
    }
    out
}

fn compile_one(pattern: &str, base: usize) -> Result<String, PatternError> {
    let err = |at: usize, message: &str| PatternError {
        offset: base + at,
        message: message.to_owned(),
    };
    if pattern.len() > 1 && pattern.starts_with('/') {
        if !pattern.ends_with('/') {
            return Err(err(
                pattern.len(),
                "expected `/` to close the regex pattern",
            ));
        }
        let body = &pattern[1..pattern.len() - 1];
        Regex::new(body).map_err(|e| err(1, &format!("invalid regex: {e}")))?;
        return Ok(format!("(?:{body})"));
    }
    let bytes = pattern.as_bytes();
    let mut regex = String::new();
    let mut open_braces = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &pattern[i..];
        let at_part_start = i == 0 || matches!(bytes[i - 1], b'{' | b',');
        match bytes[i] {
            b'\\' => {
                let c = rest[1..]
                    .chars()
                    .next()
                    .ok_or_else(|| err(i, "expected a character after `\\`"))?;
                regex.push_str(&regex::escape(&c.to_string()));
                i += 1 + c.len_utf8();
            }
            b'.' if rest.starts_with(".**")
                && matches!(bytes.get(i + 3), None | Some(b'.' | b'}' | b',')) =>
            {
                regex.push_str(r"(?:\..*)?");
                i += 3;
            }
            b'*' if rest.starts_with("**.") && at_part_start => {
                regex.push_str(r"(?:.*\.)?");
                i += 3;
            }
            b'*' if rest.starts_with("**") => {
                regex.push_str(".*");
                i += 2;
            }
            b'*' => {
                regex.push_str(r"[^.]*");
                i += 1;
            }
            b'{' => {
                open_braces.push(i);
                regex.push_str("(?:");
                i += 1;
            }
            b',' if !open_braces.is_empty() => {
                regex.push('|');
                i += 1;
            }
            b'}' => {
                if open_braces.pop().is_none() {
                    return Err(err(i, "found `}` without a matching `{`"));
                }
                regex.push(')');
                i += 1;
            }
            _ => {
                let c = rest.chars().next().expect("i is inside the pattern");
                regex.push_str(&regex::escape(&c.to_string()));
                i += c.len_utf8();
            }
        }
    }
    if let Some(open) = open_braces.pop() {
        return Err(err(open, "expected `}` to close this `{`"));
    }
    Ok(regex)
}

impl fmt::Debug for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TagPattern({:?})", self.text)
    }
}

impl fmt::Display for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, yes: &[&str], no: &[&str]) {
        let p = TagPattern::parse(pattern).unwrap();
        for tag in yes {
            assert!(p.matches(tag), "`{pattern}` should match `{tag}`");
        }
        for tag in no {
            assert!(!p.matches(tag), "`{pattern}` should not match `{tag}`");
        }
    }

    #[test]
    fn any_character_matches_in_a_tag() {
        // Tags are made safe at creation, but matching holds for any text.
        check("audit.**", &["audit.a\nb", "audit.\r"], &["audi\nt.a"]);
        check("audit.*", &["audit.a\nb"], &["audit.a.\n"]);
    }

    #[test]
    fn literal_matches_only_itself() {
        check(
            "a.b",
            &["a.b"],
            &["a", "a.b.c", "a.bc", "xa.b", "a_b", "aXb"],
        );
    }

    #[test]
    fn star_matches_exactly_one_part() {
        check("a.*", &["a.b", "a.kube-system"], &["a", "a.b.c", "b.a"]);
        check("*.b", &["a.b", "x.b"], &["b", "a.c.b"]);
        check("a.*.c", &["a.b.c"], &["a.c", "a.b.d.c"]);
        check("a.b*", &["a.b", "a.bcd"], &["a.b.c", "a.cb"]);
    }

    #[test]
    fn double_star_matches_zero_or_more_parts() {
        check("a.**", &["a", "a.b", "a.b.c"], &["ab", "b.a", "abc.d"]);
        check("**.c", &["c", "a.c", "a.b.c"], &["ac", "c.d"]);
        check("a.**.c", &["a.c", "a.b.c", "a.b.d.c"], &["a.bc", "a", "c"]);
        check("**", &["a", "a.b.c", ""], &[]);
    }

    #[test]
    fn braces_are_alternatives() {
        check("a.{b,c}", &["a.b", "a.c"], &["a.d", "a.bc", "a"]);
        check("{a,b.**}", &["a", "b", "b.x.y"], &["a.x", "c"]);
        check(
            "a.{b,c.{d,e}}",
            &["a.b", "a.c.d", "a.c.e"],
            &["a.c", "a.c.f"],
        );
        check("{audit,k8s}.*", &["audit.x", "k8s.y"], &["other.x"]);
    }

    #[test]
    fn spaces_separate_patterns() {
        check("a b.*  c.**", &["a", "b.x", "c", "c.d.e"], &["b", "d"]);
    }

    #[test]
    fn escapes_and_regex_forms() {
        check(r"a\*", &["a*"], &["ab"]);
        check("/^audit\\.(dev|prod)$/", &["audit.dev"], &["audit.qa"]);
        check("a+b", &["a+b"], &["aab"]);
    }

    #[test]
    fn malformed_patterns_report_offsets() {
        let e = TagPattern::parse("a.{b,c").unwrap_err();
        assert_eq!(e.offset, 2);
        let e = TagPattern::parse("x a.b}").unwrap_err();
        assert_eq!(e.offset, 5);
        assert!(TagPattern::parse("").is_err());
        assert!(TagPattern::parse("   ").is_err());
        assert!(TagPattern::parse("a\\").is_err());
        assert!(TagPattern::parse("/(/").is_err());
    }

    #[test]
    fn literal_prefixes_cover_every_match() {
        let p = TagPattern::parse("audit.{a,b}.* k8s.**").unwrap();
        assert_eq!(p.literal_prefixes(), ["audit.a.", "audit.b.", "k8s"]);
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(text in "[a-z.*{},\\\\/ ]{0,16}") {
            let _ = TagPattern::parse(&text);
        }

        #[test]
        fn literal_patterns_match_only_equal_tags(a in "[a-z]{1,4}(\\.[a-z]{1,4}){0,3}", b in "[a-z]{1,4}(\\.[a-z]{1,4}){0,3}") {
            let p = TagPattern::parse(&a).unwrap();
            proptest::prop_assert_eq!(p.matches(&b), a == b);
        }

        #[test]
        fn double_star_suffix_matches_every_extension(a in "[a-z]{1,4}", rest in "(\\.[a-z]{1,4}){0,4}") {
            let p = TagPattern::parse(&format!("{a}.**")).unwrap();
            let tag = format!("{a}{rest}");
            proptest::prop_assert!(p.matches(&tag));
        }
    }
}
