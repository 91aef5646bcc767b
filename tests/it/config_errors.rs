//! Every broken config in `tests/config_errors/` fails `check` with exit code
//! 2 and exactly the diagnostic in its `.stderr` file (file:line:col, the
//! offending line, a caret, and a hint). `AUDITRAIL_BLESS=1` rewrites them.

use std::path::Path;

use crate::support::{auditrail, repo};

#[test]
fn broken_configs_fail_with_their_exact_diagnostics() {
    let dir = repo("tests/config_errors");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 15,
        "expected the whole table of broken configs"
    );
    let bless = std::env::var_os("AUDITRAIL_BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let relative = Path::new("tests/config_errors").join(case.file_name().unwrap());
        let output = auditrail()
            .current_dir(repo(""))
            .args(["check", "-c"])
            .arg(&relative)
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        let expected_path = case.with_extension("stderr");
        if output.status.code() != Some(2) {
            failures.push(format!(
                "{}: exit {:?}, want 2\n{stderr}",
                relative.display(),
                output.status.code()
            ));
            continue;
        }
        if bless {
            std::fs::write(&expected_path, &stderr).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if stderr != expected {
            failures.push(format!(
                "{}:\n--- want\n{expected}--- got\n{stderr}",
                relative.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_diagnostic_names_file_line_and_column() {
    for entry in std::fs::read_dir(repo("tests/config_errors")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "stderr") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.with_extension("toml");
            let name = name.file_name().unwrap().to_str().unwrap();
            assert!(text.starts_with("error: "), "{}", path.display());
            assert!(
                text.contains(name),
                "{} does not name its file",
                path.display()
            );
        }
    }
}
