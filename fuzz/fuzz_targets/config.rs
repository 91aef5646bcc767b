//! The config loader: TOML text is parsed and validated into the typed config
//! (sources, filters with their DSL, outputs, the routing graph), and every
//! diagnostic is rendered with its `file:line:col` snippet.
//!
//! Keys naming files (policies, token files, certificates) are read as the
//! agent would; nothing is written.

#![no_main]

use auditrail::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse("fuzz.toml", text) {
        Ok(config) => {
            let _ = config.graph();
        }
        Err(ConfigError::Invalid(diagnostics)) => {
            let _ = diagnostics.to_string();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
