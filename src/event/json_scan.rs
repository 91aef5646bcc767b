//! Validates a line as one JSON object and notes where its top-level members
//! sit, without parsing it. This runs on every line a source reads, so it is
//! the read path's main cost. It works the way simdjson does: vector compares
//! turn each 64-byte block into bit masks (quotes, backslashes, structural
//! characters, whitespace), string interiors are found with a prefix XOR of
//! the quote mask, and a small state machine then visits only the structural
//! positions (about one byte in ten in audit events) instead of every byte.
//!
//! Written by hand because no crate does this job fast enough: serde_json
//! checks byte by byte (about 1 GB/s per core here), and sonic-rs, the one
//! SIMD parser that reads without copying, measured no faster without
//! `target-cpu=native`, which portable packages can't use.
//!
//! What it accepts is exactly what `serde_json::from_str::<Value>` accepts for
//! an object (so a later full parse can't fail): RFC 8259 grammar, no lone
//! surrogates in `\u` escapes, numbers within `f64` range, at most 127 levels
//! of nesting. The caller has already checked UTF-8 (the input is a `&str`).

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

/// Validates `raw` as one JSON object and indexes its top-level members. The
/// index is `None` when a key has escapes (it could not be compared as
/// written); reads then scan the whole text.
pub(super) fn index_object(raw: &str) -> Result<Option<Box<[KeyEntry]>>, JsonError> {
    thread_local! {
        /// Reused for every line, so a line costs no allocation here.
        static POSITIONS: std::cell::RefCell<Box<[u32]>> =
            std::cell::RefCell::new(vec![0; SEGMENT_BLOCKS * 64 + 8].into_boxed_slice());
    }
    let bytes = raw.as_bytes();
    if u32::try_from(bytes.len()).is_err() {
        // Positions are 32-bit; `max_line_size` and body limits stay far below.
        return Err(JsonError::at(0, "a JSON object over 4 GiB"));
    }
    POSITIONS.with_borrow_mut(|positions| {
        let mut carry = Carry::default();
        let mut walker = Walker::default();
        let mut base = 0;
        loop {
            let (found, end, scanned) = carry.segment(bytes, base, positions);
            walker.walk(bytes, &positions[..found])?;
            // A problem found by the first pass comes after every structural
            // position the second pass has checked.
            scanned?;
            base = end;
            if base >= bytes.len() {
                break;
            }
        }
        if carry.in_string != 0 {
            return Err(JsonError::at(bytes.len(), "unterminated string"));
        }
        walker.finish(bytes.len())
    })
}

/// Text is taken 64 blocks (4 KiB) at a time: most lines in one go, and the
/// buffer of structural positions stays small for huge lines.
const SEGMENT_BLOCKS: usize = 64;

/// The bit masks of one 64-byte block; bit `i` stands for byte `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    quote: u64,
    backslash: u64,
    /// Bytes below 0x20, which strings may not hold.
    control: u64,
    /// JSON whitespace: space, tab, line feed, carriage return.
    space: u64,
    /// `{ } [ ] : ,`
    operator: u64,
}

#[cfg(target_arch = "x86_64")]
fn classify(block: &[u8; 64]) -> Block {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let mut out = Block {
        quote: 0,
        backslash: 0,
        control: 0,
        space: 0,
        operator: 0,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are
    // always available; each unaligned load reads 16 bytes at offsets 0, 16,
    // 32 and 48 of a 64-byte array.
    unsafe {
        let splat = |b: u8| _mm_set1_epi8(b as i8);
        let mask = |v: __m128i| u64::from(_mm_movemask_epi8(v) as u16);
        for lane in 0..4 {
            let v = _mm_loadu_si128(block.as_ptr().add(lane * 16).cast::<__m128i>());
            let eq = |b: u8| _mm_cmpeq_epi8(v, splat(b));
            // `{`/`[` and `}`/`]` differ only in bit 0x20.
            let folded = _mm_or_si128(v, splat(0x20));
            let brace = _mm_or_si128(
                _mm_cmpeq_epi8(folded, splat(b'{')),
                _mm_cmpeq_epi8(folded, splat(b'}')),
            );
            let operator = _mm_or_si128(brace, _mm_or_si128(eq(b':'), eq(b',')));
            let space = _mm_or_si128(
                _mm_or_si128(eq(b' '), eq(b'\t')),
                _mm_or_si128(eq(b'\n'), eq(b'\r')),
            );
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, splat(0x1f)), v);
            let shift = lane * 16;
            out.quote |= mask(eq(b'"')) << shift;
            out.backslash |= mask(eq(b'\\')) << shift;
            out.control |= mask(control) << shift;
            out.space |= mask(space) << shift;
            out.operator |= mask(operator) << shift;
        }
    }
    out
}

#[cfg(not(target_arch = "x86_64"))]
fn classify(block: &[u8; 64]) -> Block {
    classify_bytewise(block)
}

/// The portable classifier: other targets use it, and tests check the vector
/// one against it.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn classify_bytewise(block: &[u8; 64]) -> Block {
    let mut out = Block {
        quote: 0,
        backslash: 0,
        control: 0,
        space: 0,
        operator: 0,
    };
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        match b {
            b'"' => out.quote |= bit,
            b'\\' => out.backslash |= bit,
            b'{' | b'}' | b'[' | b']' | b':' | b',' => out.operator |= bit,
            b' ' => out.space |= bit,
            _ => {}
        }
        if b < 0x20 {
            out.control |= bit;
            if matches!(b, b'\t' | b'\n' | b'\r') {
                out.space |= bit;
            }
        }
    }
    out
}

/// What the first pass learns from one block.
struct Structure {
    /// Positions the state machine must visit: operators outside strings,
    /// opening quotes, and the first byte of each number or literal.
    structurals: u64,
    /// The first byte this pass rejects (a control character or a bad
    /// escape inside a string), with the reason.
    error_bit: Option<u32>,
    error: Option<JsonError>,
}

/// The first pass's state from one block to the next.
#[derive(Default)]
struct Carry {
    /// All ones when the previous block ended inside a string.
    in_string: u64,
    /// The previous block's last byte is a backslash that escapes this
    /// block's first byte.
    escaped: bool,
    /// The previous block's last byte belongs to a number or literal.
    in_scalar: bool,
    /// A low-surrogate escape already checked with its high surrogate.
    checked_escape_at: Option<usize>,
}

impl Carry {
    /// The first pass over up to [`SEGMENT_BLOCKS`] blocks from `base`:
    /// writes their structural positions to `positions` up to the first
    /// problem (a control character or a bad escape inside a string).
    /// Returns how many it wrote, where it stopped, and the problem.
    fn segment(
        &mut self,
        bytes: &[u8],
        mut base: usize,
        positions: &mut [u32],
    ) -> (usize, usize, Result<(), JsonError>) {
        let end = bytes.len().min(base + SEGMENT_BLOCKS * 64);
        let mut found = 0;
        while base < end {
            let block = match bytes.get(base..base + 64) {
                Some(full) => classify(full.try_into().expect("64 bytes")),
                None => {
                    // Pad the last block with spaces, which change nothing.
                    let mut padded = [b' '; 64];
                    padded[..bytes.len() - base].copy_from_slice(&bytes[base..]);
                    classify(&padded)
                }
            };
            let structure = self.structure(&block, bytes, base);
            let mut structurals = structure.structurals;
            if let Some(bit) = structure.error_bit {
                structurals &= (1u64 << bit) - 1;
            }
            // Write eight at a time without a branch per position; the
            // extra writes land past `found` and are overwritten or unused.
            let count = structurals.count_ones() as usize;
            let mut at = found;
            while at < found + count {
                for slot in &mut positions[at..at + 8] {
                    *slot = base as u32 + structurals.trailing_zeros();
                    structurals &= structurals.wrapping_sub(1);
                }
                at += 8;
            }
            found += count;
            if let Some(error) = structure.error {
                return (found, base, Err(error));
            }
            base += 64;
        }
        (found, end, Ok(()))
    }

    fn structure(&mut self, block: &Block, bytes: &[u8], base: usize) -> Structure {
        let (escaped, escapers) = self.escapes(block.backslash);
        let quote = block.quote & !escaped;
        let in_string = prefix_xor(quote) ^ self.in_string;
        self.in_string = ((in_string as i64) >> 63) as u64;

        let scalar = !(block.operator | block.space | quote) & !in_string;
        let scalar_start = scalar & !((scalar << 1) | u64::from(self.in_scalar));
        self.in_scalar = scalar >> 63 == 1;
        let structurals = (block.operator & !in_string) | (quote & in_string) | scalar_start;

        let mut error_bit = None;
        let mut error = None;
        let control = block.control & in_string;
        if control != 0 {
            let bit = control.trailing_zeros();
            error_bit = Some(bit);
            error = Some(JsonError::at(base + bit as usize, "control character in string"));
        }
        let mut escapers = escapers & in_string;
        if let Some(bit) = error_bit {
            escapers &= (1u64 << bit) - 1;
        }
        while escapers != 0 {
            let bit = escapers.trailing_zeros();
            escapers &= escapers - 1;
            let at = base + bit as usize;
            if self.checked_escape_at == Some(at) {
                continue;
            }
            if let Err(problem) = self.check_escape(bytes, at) {
                error_bit = Some(bit);
                error = Some(JsonError::at(at, problem));
                break;
            }
        }
        Structure {
            structurals,
            error_bit,
            error,
        }
    }

    /// The bytes escaped by a backslash, and the backslashes doing it. A
    /// backslash escapes the next byte unless it is itself escaped; runs of
    /// backslashes are rare, so they are walked one by one.
    fn escapes(&mut self, backslash: u64) -> (u64, u64) {
        let mut escaped = u64::from(self.escaped);
        self.escaped = false;
        let mut escapers = 0;
        let mut rest = backslash;
        while rest != 0 {
            let bit = rest.trailing_zeros();
            rest &= rest - 1;
            if escaped & (1 << bit) != 0 {
                continue;
            }
            escapers |= 1 << bit;
            if bit == 63 {
                self.escaped = true;
            } else {
                escaped |= 1 << (bit + 1);
            }
        }
        (escaped, escapers)
    }

    /// Checks the escape whose backslash is at `at`.
    fn check_escape(&mut self, bytes: &[u8], at: usize) -> Result<(), &'static str> {
        match bytes.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(()),
            Some(b'u') => {
                let unit = hex4(bytes, at + 2).ok_or("invalid \\u escape")?;
                match unit {
                    0xD800..=0xDBFF => {
                        let low = (bytes.get(at + 6..at + 8) == Some(b"\\u"))
                            .then(|| hex4(bytes, at + 8))
                            .flatten();
                        match low {
                            Some(0xDC00..=0xDFFF) => {
                                self.checked_escape_at = Some(at + 6);
                                Ok(())
                            }
                            _ => Err("lone leading surrogate in \\u escape"),
                        }
                    }
                    0xDC00..=0xDFFF => Err("lone trailing surrogate in \\u escape"),
                    _ => Ok(()),
                }
            }
            _ => Err("invalid escape"),
        }
    }
}

/// The four hex digits at `at`, as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0, |value, &d| {
        Some(value * 16 + char::from(d).to_digit(16)?)
    })
}

/// Bit `i` of the result is the XOR of bits `0..=i`: set from an opening
/// quote up to (not including) its closing quote.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// serde_json refuses the 128th level of nesting; so do we.
const MAX_DEPTH: u32 = 127;

/// What the grammar allows at the next structural position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Value,
    /// Right after `{`.
    KeyOrEnd,
    /// Right after `[`.
    ValueOrEnd,
    /// After a `,` in an object.
    Key,
    Colon,
    /// After a value.
    CommaOrEnd,
}

/// The second pass: a state machine over the structural positions, with the
/// open containers kept as a bit stack (1 = object).
struct Walker {
    expect: Expect,
    depth: u32,
    objects: u128,
    /// Top-level members so far, and the one being read.
    members: Vec<KeyEntry>,
    key: (u32, u32),
    value_start: u32,
    /// Whether every top-level key can be compared as written.
    usable: bool,
}

impl Default for Walker {
    fn default() -> Self {
        Self {
            expect: Expect::Value,
            depth: 0,
            objects: 0,
            members: Vec::with_capacity(24),
            key: (0, 0),
            value_start: 0,
            usable: true,
        }
    }
}

impl Walker {
    /// Visits one segment's positions. The state is copied into locals for
    /// the loop so it stays in registers.
    fn walk(&mut self, bytes: &[u8], positions: &[u32]) -> Result<(), JsonError> {
        let Self {
            mut expect,
            mut depth,
            mut objects,
            mut key,
            mut value_start,
            mut usable,
            ..
        } = *self;
        let members = &mut self.members;
        for &at in positions {
            let byte = bytes[at as usize];
            if depth == 0 {
                // Before the line's object (which must come first) or after it.
                if expect == Expect::Value && byte == b'{' {
                    depth = 1;
                    objects = 1;
                    expect = Expect::KeyOrEnd;
                    continue;
                }
                let problem = if expect == Expect::Value {
                    "expected a JSON object"
                } else {
                    "trailing characters"
                };
                return Err(JsonError::at(at as usize, problem));
            }
            let top = depth == 1;
            expect = match byte {
                b'"' => match expect {
                    Expect::Value | Expect::ValueOrEnd => {
                        // The first pass checked the string's contents and end.
                        if top {
                            value_start = at;
                        }
                        Expect::CommaOrEnd
                    }
                    Expect::KeyOrEnd | Expect::Key => {
                        if top {
                            key.0 = at + 1;
                        }
                        Expect::Colon
                    }
                    _ => return Err(unexpected(expect, objects, at)),
                },
                b':' if expect == Expect::Colon => {
                    if top {
                        key.1 = trim_end(bytes, at) - 1;
                        let text = &bytes[key.0 as usize..key.1 as usize];
                        usable &= !text.contains(&b'\\');
                    }
                    Expect::Value
                }
                b',' if expect == Expect::CommaOrEnd => {
                    if top {
                        members.push(KeyEntry {
                            key,
                            value: (value_start, trim_end(bytes, at)),
                        });
                    }
                    if objects & 1 == 1 {
                        Expect::Key
                    } else {
                        Expect::Value
                    }
                }
                b'{' | b'[' if matches!(expect, Expect::Value | Expect::ValueOrEnd) => {
                    if depth == MAX_DEPTH {
                        return Err(JsonError::at(at as usize, "nested too deeply"));
                    }
                    if top {
                        value_start = at;
                    }
                    depth += 1;
                    let object = byte == b'{';
                    objects = (objects << 1) | u128::from(object);
                    if object {
                        Expect::KeyOrEnd
                    } else {
                        Expect::ValueOrEnd
                    }
                }
                b'}' | b']' => {
                    let object = byte == b'}';
                    let closes = match expect {
                        Expect::CommaOrEnd => (objects & 1 == 1) == object,
                        Expect::KeyOrEnd => object,
                        Expect::ValueOrEnd => !object,
                        _ => false,
                    };
                    if !closes {
                        return Err(unexpected(expect, objects, at));
                    }
                    if top && expect == Expect::CommaOrEnd {
                        members.push(KeyEntry {
                            key,
                            value: (value_start, trim_end(bytes, at)),
                        });
                    }
                    depth -= 1;
                    objects >>= 1;
                    Expect::CommaOrEnd
                }
                _ if matches!(expect, Expect::Value | Expect::ValueOrEnd) => {
                    if top {
                        value_start = at;
                    }
                    let end = scalar_end(bytes, at as usize)?;
                    if !bytes.get(end).is_none_or(|&b| is_delimiter(b)) {
                        return Err(JsonError::at(end, "invalid character after a value"));
                    }
                    Expect::CommaOrEnd
                }
                _ => return Err(unexpected(expect, objects, at)),
            };
        }
        self.expect = expect;
        self.depth = depth;
        self.objects = objects;
        self.key = key;
        self.value_start = value_start;
        self.usable = usable;
        Ok(())
    }

    fn finish(self, len: usize) -> Result<Option<Box<[KeyEntry]>>, JsonError> {
        match (self.expect, self.depth) {
            (Expect::CommaOrEnd, 0) => Ok(self.usable.then(|| self.members.into_boxed_slice())),
            (Expect::Value, 0) => Err(JsonError::at(len, "expected a JSON object")),
            _ => Err(JsonError::at(len, "unexpected end of input")),
        }
    }
}

/// The error for a structural byte the grammar does not allow here.
#[cold]
fn unexpected(expect: Expect, objects: u128, at: u32) -> JsonError {
    let problem = match expect {
        Expect::Value | Expect::ValueOrEnd => "expected a value",
        Expect::KeyOrEnd | Expect::Key => "expected a string key",
        Expect::Colon => "expected `:`",
        Expect::CommaOrEnd if objects & 1 == 1 => "expected `,` or `}`",
        Expect::CommaOrEnd => "expected `,` or `]`",
    };
    JsonError::at(at as usize, problem)
}

/// The end of the text before `at`, without trailing whitespace.
fn trim_end(bytes: &[u8], mut at: u32) -> u32 {
    while matches!(bytes[at as usize - 1], b' ' | b'\t' | b'\n' | b'\r') {
        at -= 1;
    }
    at
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
