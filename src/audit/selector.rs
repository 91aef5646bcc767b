//! Field- and label-selector parsing as apimachinery's `fields.ParseSelector` and
//! `labels.Parse` do it. Request-info only needs to know whether a selector parses and
//! which value a field selector pins `metadata.name` to.

/// Parses a field selector and returns the value an `=`/`==` term requires for `field`
/// (`Ok(None)` when no such term), or `Err(())` when the selector does not parse.
pub(crate) fn field_selector_exact_match(
    selector: &str,
    field: &str,
) -> Result<Option<String>, ()> {
    let mut terms = split_terms(selector);
    // Kubernetes sorts the raw terms before building the selector, so the first
    // matching term in byte order wins.
    terms.sort_unstable();
    let mut found = None;
    for term in terms {
        if term.is_empty() {
            continue;
        }
        let (lhs, op, rhs) = split_term(term).ok_or(())?;
        let value = unescape_value(rhs)?;
        // A term with empty field and value is "everything" and never pins a field.
        if found.is_none() && op != "!=" && lhs == field && !(lhs.is_empty() && value.is_empty()) {
            found = Some(value);
        }
    }
    Ok(found)
}

/// Splits on commas not preceded by a backslash; escapes stay in the terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// The first operator occurrence splits the term (`!=` and `==` before `=`).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], op, rhs));
            }
        }
    }
    None
}

fn unescape_value(value: &str) -> Result<String, ()> {
    let mut out = String::with_capacity(value.len());
    let mut in_slash = false;
    for c in value.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => return Err(()),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(()),
            _ => out.push(c),
        }
    }
    if in_slash { Err(()) } else { Ok(out) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    End,
    Error,
    Ident(&'a str),
    In,
    NotIn,
    Symbol(&'static str),
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

const SYMBOLS: [&str; 9] = ["!=", "==", "=", "!", "(", ")", ",", ">", "<"];

/// apimachinery's label lexer: a NUL byte ends the input, symbols are matched longest-first.
fn lex(input: &str) -> Vec<Token<'_>> {
    let bytes = input.as_bytes();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let mut pos = 0;
    let mut tokens = Vec::new();
    loop {
        while pos < end && matches!(bytes[pos], b' ' | b'\t' | b'\r' | b'\n') {
            pos += 1;
        }
        if pos >= end {
            tokens.push(Token::End);
            return tokens;
        }
        if is_special(bytes[pos]) {
            let mut best: Option<&'static str> = None;
            let mut len = 0;
            while pos + len < end && is_special(bytes[pos + len]) {
                len += 1;
                let candidate = &input[pos..pos + len];
                match SYMBOLS.iter().find(|s| **s == candidate) {
                    Some(sym) => best = Some(sym),
                    None if best.is_some() => break,
                    None => {}
                }
            }
            match best {
                Some(sym) => {
                    tokens.push(Token::Symbol(sym));
                    pos += sym.len();
                }
                None => {
                    tokens.push(Token::Error);
                    tokens.push(Token::End);
                    return tokens;
                }
            }
        } else {
            let start = pos;
            while pos < end
                && !is_special(bytes[pos])
                && !matches!(bytes[pos], b' ' | b'\t' | b'\r' | b'\n')
            {
                pos += 1;
            }
            tokens.push(match &input[start..pos] {
                "in" => Token::In,
                "notin" => Token::NotIn,
                ident => Token::Ident(ident),
            });
        }
    }
}

/// Whether `labels.Parse` accepts the selector.
pub(crate) fn label_selector_parses(selector: &str) -> bool {
    LabelParser {
        tokens: lex(selector),
        pos: 0,
    }
    .parse()
    .is_some()
}

struct LabelParser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
}

impl<'a> LabelParser<'a> {
    /// Peek in "values" context, where `in`/`notin` are plain identifiers.
    fn peek_value(&self) -> Token<'a> {
        match self.tokens.get(self.pos).copied().unwrap_or(Token::End) {
            Token::In => Token::Ident("in"),
            Token::NotIn => Token::Ident("notin"),
            t => t,
        }
    }

    fn next_value(&mut self) -> Token<'a> {
        let t = self.peek_value();
        self.pos += 1;
        t
    }

    fn next_raw(&mut self) -> Token<'a> {
        let t = self.tokens.get(self.pos).copied().unwrap_or(Token::End);
        self.pos += 1;
        t
    }

    fn parse(&mut self) -> Option<()> {
        loop {
            match self.peek_value() {
                Token::Ident(_) | Token::Symbol("!") => {
                    self.requirement()?;
                    match self.next_value() {
                        Token::End => return Some(()),
                        Token::Symbol(",") => {
                            if !matches!(self.peek_value(), Token::Ident(_) | Token::Symbol("!")) {
                                return None;
                            }
                        }
                        _ => return None,
                    }
                }
                Token::End => return Some(()),
                _ => return None,
            }
        }
    }

    fn requirement(&mut self) -> Option<()> {
        let mut negated = false;
        let mut tok = self.next_value();
        if tok == Token::Symbol("!") {
            negated = true;
            tok = self.next_value();
        }
        let Token::Ident(key) = tok else { return None };
        if !is_qualified_name(key) {
            return None;
        }
        if matches!(self.peek_value(), Token::End | Token::Symbol(",")) {
            return Some(());
        }
        if negated {
            // `!key` followed by an operator: the parser reads an operator anyway and
            // then NewRequirement rejects values for DoesNotExist.
            self.operator()?;
            return None;
        }
        let values: Vec<&str> = match self.operator()? {
            Op::Set => self.set_values()?,
            Op::Exact => self.exact_value()?,
            Op::Compare => {
                let v = self.exact_value()?;
                if v.iter().any(|v| v.parse::<i64>().is_err()) {
                    return None;
                }
                v
            }
        };
        values.iter().all(|v| is_label_value(v)).then_some(())
    }

    fn operator(&mut self) -> Option<Op> {
        match self.next_raw() {
            Token::In | Token::NotIn => Some(Op::Set),
            Token::Symbol("=" | "==" | "!=") => Some(Op::Exact),
            Token::Symbol(">" | "<") => Some(Op::Compare),
            _ => None,
        }
    }

    fn exact_value(&mut self) -> Option<Vec<&'a str>> {
        match self.peek_value() {
            Token::End | Token::Symbol(",") => Some(vec![""]),
            Token::Ident(v) => {
                self.pos += 1;
                Some(vec![v])
            }
            _ => None,
        }
    }

    fn set_values(&mut self) -> Option<Vec<&'a str>> {
        if self.next_value() != Token::Symbol("(") {
            return None;
        }
        match self.peek_value() {
            Token::Symbol(")") => {
                self.pos += 1;
                Some(vec![""])
            }
            Token::Ident(_) | Token::Symbol(",") => {
                let values = self.identifier_list()?;
                (self.next_value() == Token::Symbol(")")).then_some(values)
            }
            _ => None,
        }
    }

    fn identifier_list(&mut self) -> Option<Vec<&'a str>> {
        let mut values = Vec::new();
        loop {
            match self.next_value() {
                Token::Ident(v) => {
                    values.push(v);
                    match self.peek_value() {
                        Token::Symbol(",") => {}
                        Token::Symbol(")") => return Some(values),
                        _ => return None,
                    }
                }
                Token::Symbol(",") => {
                    if values.is_empty() {
                        values.push("");
                    }
                    match self.peek_value() {
                        Token::Symbol(")") => {
                            values.push("");
                            return Some(values);
                        }
                        Token::Symbol(",") => {
                            self.pos += 1;
                            values.push("");
                        }
                        _ => {}
                    }
                }
                _ => return None,
            }
        }
    }
}

enum Op {
    Set,
    Exact,
    Compare,
}

/// `IsQualifiedName`: optional DNS-subdomain prefix and `/`, then a 1–63 char name.
fn is_qualified_name(value: &str) -> bool {
    let mut parts = value.split('/');
    let (prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, _) => (None, name),
        (Some(prefix), Some(name), None) => (Some(prefix), name),
        _ => return false,
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty() || !is_dns_subdomain(prefix))
    {
        return false;
    }
    !name.is_empty() && is_label_value(name)
}

/// `IsValidLabelValue`: empty, or ≤ 63 chars of alphanumerics, `-`, `_`, `.` with
/// alphanumeric ends.
fn is_label_value(value: &str) -> bool {
    let b = value.as_bytes();
    if b.is_empty() {
        return true;
    }
    b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= 253
        && value.split('.').all(|label| {
            let b = label.as_bytes();
            let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
            !b.is_empty()
                && alnum(&b[0])
                && alnum(&b[b.len() - 1])
                && b.iter().all(|c| alnum(c) || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_selector_pins_name() {
        let f = |s| field_selector_exact_match(s, "metadata.name");
        assert_eq!(f("metadata.name=a"), Ok(Some("a".into())));
        assert_eq!(f("metadata.name==a"), Ok(Some("a".into())));
        assert_eq!(f("metadata.name!=a"), Ok(None));
        assert_eq!(f("spec.x=1,metadata.name=b"), Ok(Some("b".into())));
        assert_eq!(f("metadata.name=b,metadata.name=a"), Ok(Some("a".into())));
        assert_eq!(f(r"metadata.name=a\,b"), Ok(Some("a,b".into())));
        assert_eq!(f("metadata.name"), Err(()));
        assert_eq!(f(r"metadata.name=a\x"), Err(()));
        assert_eq!(f(""), Ok(None));
    }

    #[test]
    fn label_selectors() {
        for ok in [
            "",
            "a=b",
            "a==b,c!=d",
            "a in (x,y)",
            "!a",
            "a",
            "a notin ()",
            "x>1",
            "k8s.io/app=web",
            "a=",
            "a in (,)",
        ] {
            assert!(label_selector_parses(ok), "{ok}");
        }
        for bad in [
            "a=b=c", "=b", "a in x", "x>y", "a,", "!a=b", "A/b=c", "a=(", "a b",
        ] {
            assert!(!label_selector_parses(bad), "{bad}");
        }
    }
}
