//! Validates a line as one JSON object and notes where its top-level members
//! sit, without parsing it. This runs on every line a source reads, so it is
//! the read path's main cost. One pass over the bytes; strings, most of an
//! audit event, are skipped 16 bytes at a time with vector compares that find
//! the next quote, backslash or control character.
//!
//! Written by hand because no crate does this job as fast: serde_json (whose
//! `RawValue` skip did this before) checks strings 8 bytes at a time and goes
//! through its `Deserializer` machinery per token, and sonic-rs, the one
//! SIMD parser that reads without copying, measured no faster here without
//! `target-cpu=native`, which portable packages can't use. A simdjson-style
//! two-pass scanner was tried too: with baseline x86-64 instructions it was
//! slower than serde_json on audit events (short strings, dense structure).
//!
//! What it accepts is exactly what `serde_json::from_str::<Value>` accepts for
//! an object (so a later full parse can't fail): RFC 8259 grammar, no lone
//! surrogates in `\u` escapes, numbers within `f64` range, at most 127 levels
//! of nesting. It leaves UTF-8 to the caller, and says when the line is all
//! ASCII so that check can be skipped.

use std::fmt;

/// Where one top-level key and its value sit in the record's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeyEntry {
    key: (u32, u32),
    value: (u32, u32),
}

impl KeyEntry {
    pub(super) fn key<'r>(&self, raw: &'r str) -> &'r str {
        &raw[self.key.0 as usize..self.key.1 as usize]
    }

    pub(super) fn value<'r>(&self, raw: &'r str) -> &'r str {
        &raw[self.value.0 as usize..self.value.1 as usize]
    }
}

/// Why a line is not one JSON object, and where (a byte offset in the line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    offset: usize,
    problem: &'static str,
}

impl JsonError {
    fn at(offset: usize, problem: &'static str) -> Self {
        Self { offset, problem }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at column {}", self.problem, self.offset + 1)
    }
}

impl std::error::Error for JsonError {}

/// A line found to be one JSON object.
pub(super) struct Scanned {
    /// Its top-level members; `None` when a key has escapes (it could not
    /// be compared as written), and reads then scan the whole text.
    pub(super) index: Option<Box<[KeyEntry]>>,
    /// All bytes are ASCII, so the line is UTF-8 with no further check.
    pub(super) ascii: bool,
}

/// Validates `bytes` as one JSON object and indexes its top-level members.
/// Strings' bytes are not checked for UTF-8; see [`Scanned::ascii`].
pub(super) fn index_object(bytes: &[u8]) -> Result<Scanned, JsonError> {
    if u32::try_from(bytes.len()).is_err() {
        // Offsets are 32-bit; `max_line_size` and body limits stay far below.
        return Err(JsonError::at(0, "a JSON object over 4 GiB"));
    }
    let mut scan = Scanner {
        bytes,
        at: 0,
        window_start: 0,
        window: 0,
        non_ascii: false,
    };
    scan.load_window(0);
    thread_local! {
        /// Members are gathered here and copied out at their exact count:
        /// one allocation per line instead of a growing Vec's two.
        static MEMBERS: std::cell::RefCell<Vec<KeyEntry>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    MEMBERS.with_borrow_mut(|members| {
        members.clear();
        let usable = scan.object(members)?;
        Ok(Scanned {
            index: usable.then(|| Box::from(&members[..])),
            ascii: !scan.non_ascii,
        })
    })
}

/// serde_json refuses the 128th level of nesting; so do we.
const MAX_DEPTH: u32 = 127;

struct Scanner<'b> {
    bytes: &'b [u8],
    at: usize,
    /// [`string_specials`] of the 64 bytes from `window_start`.
    window_start: usize,
    window: u64,
    /// Whether a window held a byte over 0x7f. Every byte of a valid line
    /// is either in a window or part of a token (all ASCII), so without one
    /// the line is ASCII and needs no UTF-8 check.
    non_ascii: bool,
}

impl Scanner<'_> {
    fn load_window(&mut self, start: usize) {
        self.window_start = start;
        let (specials, high) = match self.bytes.get(start..start + 64) {
            Some(full) => string_specials(full.try_into().expect("64 bytes")),
            None => {
                // Past the end counts as special, so a search stops there.
                let mut padded = [b'"'; 64];
                let rest = &self.bytes[start.min(self.bytes.len())..];
                padded[..rest.len()].copy_from_slice(rest);
                string_specials(&padded)
            }
        };
        self.window = specials;
        self.non_ascii |= high != 0;
    }

    /// The first quote, backslash or control character at or after `at`
    /// (or the end of the text).
    fn find_string_special(&mut self, mut at: usize) -> usize {
        loop {
            let offset = at.wrapping_sub(self.window_start);
            if offset >= 64 {
                self.load_window(at);
                continue;
            }
            let ahead = self.window >> offset;
            if ahead != 0 {
                return (at + ahead.trailing_zeros() as usize).min(self.bytes.len());
            }
            at = self.window_start + 64;
        }
    }

    /// The line's object and the end of the line, noting each member;
    /// returns whether every key can be compared as written.
    fn object(&mut self, members: &mut Vec<KeyEntry>) -> Result<bool, JsonError> {
        if self.next_token() != Some(b'{') {
            return Err(self.error("expected a JSON object"));
        }
        self.at += 1;
        let mut usable = true;
        if self.next_token() == Some(b'}') {
            self.at += 1;
        } else {
            loop {
                let (key, escaped) = self.key()?;
                usable &= !escaped;
                self.skip_space();
                let start = self.at;
                self.value()?;
                members.push(KeyEntry {
                    key,
                    value: (start as u32, self.at as u32),
                });
                match self.next_token() {
                    Some(b',') => self.at += 1,
                    Some(b'}') => {
                        self.at += 1;
                        break;
                    }
                    Some(_) => return Err(self.error("expected `,` or `}`")),
                    None => return Err(self.error("unexpected end of input")),
                }
            }
        }
        if self.next_token().is_some() {
            return Err(self.error("trailing characters"));
        }
        Ok(usable)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace.
    fn next_token(&mut self) -> Option<u8> {
        self.skip_space();
        self.peek()
    }

    #[cold]
    fn error(&self, problem: &'static str) -> JsonError {
        JsonError::at(self.at, problem)
    }

    /// An object key and its `:`, from the next token; returns the key's
    /// span (without quotes) and whether it has escapes.
    #[inline(always)]
    fn key(&mut self) -> Result<((u32, u32), bool), JsonError> {
        if self.next_token() != Some(b'"') {
            return Err(self.error("expected a string key"));
        }
        let start = self.at + 1;
        let escaped = self.string()?;
        let span = (start as u32, self.at as u32 - 1);
        // Go writes `"key":` with no space; check that before skipping any.
        if self.peek() != Some(b':') && self.next_token() != Some(b':') {
            return Err(self.error("expected `:`"));
        }
        self.at += 1;
        Ok((span, escaped))
    }

    /// A string from its opening quote to just past its closing one;
    /// returns whether it has escapes. Inlined so that key and value strings
    /// get branches of their own, which predict better.
    #[inline(always)]
    fn string(&mut self) -> Result<bool, JsonError> {
        self.at += 1;
        let mut escaped = false;
        loop {
            self.at = self.find_string_special(self.at);
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    // `\"` is most escapes in audit events (quoted names in
                    // authorization reasons); the rest take the slow path.
                    if self.bytes.get(self.at + 1) == Some(&b'"') {
                        self.at += 2;
                    } else {
                        self.escape()?;
                    }
                }
                Some(_) => return Err(self.error("control character in string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    /// One escape, from its backslash.
    #[cold]
    fn escape(&mut self) -> Result<(), JsonError> {
        let bytes = self.bytes;
        let at = self.at;
        self.at += match bytes.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
            Some(b'u') => match hex4(bytes, at + 2) {
                None => return Err(self.error("invalid \\u escape")),
                Some(0xD800..=0xDBFF) => {
                    let low = (bytes.get(at + 6..at + 8) == Some(b"\\u"))
                        .then(|| hex4(bytes, at + 8))
                        .flatten();
                    if !matches!(low, Some(0xDC00..=0xDFFF)) {
                        return Err(self.error("lone leading surrogate in \\u escape"));
                    }
                    12
                }
                Some(0xDC00..=0xDFFF) => {
                    return Err(self.error("lone trailing surrogate in \\u escape"));
                }
                Some(_) => 6,
            },
            _ => return Err(self.error("invalid escape")),
        };
        Ok(())
    }

    /// One value inside the line's object, from its first byte to just past
    /// its end. Nested containers are walked with a bit stack (1 = object)
    /// rather than recursion.
    fn value(&mut self) -> Result<(), JsonError> {
        let mut depth = 0u32;
        let mut objects = 0u128;
        'value: loop {
            match self.peek() {
                Some(b'"') => {
                    self.string()?;
                }
                Some(open @ (b'{' | b'[')) => {
                    // The line's own object is the first level.
                    if depth + 1 == MAX_DEPTH {
                        return Err(self.error("nested too deeply"));
                    }
                    self.at += 1;
                    let object = open == b'{';
                    let close = if object { b'}' } else { b']' };
                    if self.next_token() == Some(close) {
                        self.at += 1;
                    } else {
                        depth += 1;
                        objects = (objects << 1) | u128::from(object);
                        if object {
                            self.key()?;
                        }
                        self.skip_space();
                        continue 'value;
                    }
                }
                Some(_) => {
                    self.at = scalar_end(self.bytes, self.at)?;
                    if !self.peek().is_none_or(is_delimiter) {
                        return Err(self.error("invalid character after a value"));
                    }
                }
                None => return Err(self.error("unexpected end of input")),
            }
            // After a value: close containers until one continues.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let in_object = objects & 1 == 1;
                match self.next_token() {
                    Some(b',') => {
                        self.at += 1;
                        if in_object {
                            self.key()?;
                        }
                        self.skip_space();
                        continue 'value;
                    }
                    Some(b'}') if in_object => {}
                    Some(b']') if !in_object => {}
                    Some(_) if in_object => return Err(self.error("expected `,` or `}`")),
                    Some(_) => return Err(self.error("expected `,` or `]`")),
                    None => return Err(self.error("unexpected end of input")),
                }
                self.at += 1;
                depth -= 1;
                objects >>= 1;
            }
        }
    }
}

/// Marks the quotes, backslashes and control characters of 64 bytes (bit
/// `i` for `window[i]`), and the bytes over 0x7f. Computing this once per 64 bytes and reading the
/// ends of several strings from it costs less than a vector search per
/// string: audit events have a string every 20 bytes or so.
fn string_specials(window: &[u8; 64]) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        let (mut specials, mut high) = (0, 0);
        for (lane, chunk) in window.chunks_exact(16).enumerate() {
            // SAFETY: SSE2 is part of the x86_64 baseline, so these
            // intrinsics are always available; the unaligned load reads the
            // 16 bytes of `chunk`.
            let (bits, high_bits) = unsafe {
                let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
                let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
                let special = _mm_or_si128(_mm_or_si128(quote, backslash), control);
                (_mm_movemask_epi8(special), _mm_movemask_epi8(v))
            };
            specials |= u64::from(bits as u16) << (lane * 16);
            high |= u64::from(high_bits as u16) << (lane * 16);
        }
        (specials, high)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        string_specials_bytewise(window)
    }
}

/// The portable version: other targets use it, and tests check the vector
/// one against it.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn string_specials_bytewise(window: &[u8; 64]) -> (u64, u64) {
    let mask = |pick: fn(u8) -> bool| {
        (window.iter().enumerate())
            .filter(|&(_, &b)| pick(b))
            .fold(0, |mask, (i, _)| mask | 1 << i)
    };
    (
        mask(|b| b == b'"' || b == b'\\' || b < 0x20),
        mask(|b| b > 0x7f),
    )
}

/// The four hex digits at `at`, as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0, |value, &d| {
        Some(value * 16 + char::from(d).to_digit(16)?)
    })
}

/// Bytes that may follow a number or literal.
fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' | b'{' | b'}' | b'[' | b']' | b'"'
    )
}

/// Checks the number or literal starting at `at` and returns where it ends.
fn scalar_end(bytes: &[u8], at: usize) -> Result<usize, JsonError> {
    let literal = |word: &[u8]| {
        if bytes[at..].starts_with(word) {
            Ok(at + word.len())
        } else {
            Err(JsonError::at(at, "expected a value"))
        }
    };
    match bytes[at] {
        b't' => literal(b"true"),
        b'f' => literal(b"false"),
        b'n' => literal(b"null"),
        b'-' | b'0'..=b'9' => number_end(bytes, at),
        _ => Err(JsonError::at(at, "expected a value")),
    }
}

fn number_end(bytes: &[u8], start: usize) -> Result<usize, JsonError> {
    let digits = |from: usize| {
        from + bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut at = start + usize::from(bytes[start] == b'-');
    let int_start = at;
    match bytes.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => at = digits(at),
        _ => return Err(JsonError::at(at, "expected a digit")),
    }
    let int_digits = at - int_start;
    if bytes.get(at) == Some(&b'.') {
        let end = digits(at + 1);
        if end == at + 1 {
            return Err(JsonError::at(end, "expected a digit after `.`"));
        }
        at = end;
    }
    let mut exponent = false;
    if let Some(b'e' | b'E') = bytes.get(at) {
        exponent = true;
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        let end = digits(at);
        if end == at {
            return Err(JsonError::at(end, "expected a digit in the exponent"));
        }
        at = end;
    }
    // Only an exponent or over 308 integer digits can leave f64's range;
    // serde_json itself decides, so the two always agree.
    if exponent || int_digits > 308 {
        let text = std::str::from_utf8(&bytes[start..at]).expect("digits are ASCII");
        if serde_json::from_str::<f64>(text).is_err() {
            return Err(JsonError::at(start, "number out of range"));
        }
    }
    Ok(at)
}

#[cfg(test)]
#[path = "json_scan_tests.rs"]
mod tests;
