//! What every line-reading source (`stdin`, `tail`, `http`) shares between
//! reading bytes and sending events: cutting bytes into lines, decoding a
//! line per `format` (JSON, text, or raw access records audited through a
//! policy), finding its event time, logging bad lines once per kind, and
//! the pool of read buffers.

mod audit_input;
mod bad_line;
pub(crate) mod buffer_pool;
mod decoder;
mod lines;

pub use bad_line::{BadLine, BadLineKind, BadLineLog};
pub use decoder::{
    DEFAULT_JOIN_TIMEOUT, DecodeKeys, DecodeSpec, Decoded, Decoder, InputFormat, TimeSpec,
    parse_time,
};
pub use lines::{Line, LineSplitter};
