//! Data-driven tests: conformance vectors, fixture round trips, the replay of a real
//! kube-apiserver capture, and no-panic property tests. All data lives in `tests/data/`.

mod conformance;
mod fixtures;
mod no_panic;
mod real_apiserver;

use std::path::PathBuf;

use serde_json::Value;

fn data_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(relative)
}

fn read_text(relative: &str) -> String {
    let path = data_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn read_json(relative: &str) -> Value {
    serde_json::from_str(&read_text(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Every file of a `tests/data` directory with the given suffix, sorted.
fn files_in(relative_dir: &str, suffix: &str) -> Vec<String> {
    let dir = data_path(relative_dir);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(suffix))
        .map(|name| format!("{relative_dir}/{name}"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no {suffix} files in {relative_dir}");
    names
}
