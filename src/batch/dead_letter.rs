//! The dead-letter file: events a remote rejected for good (a 4xx other than
//! 429, a mapping error) are appended as NDJSON with the reason, so nothing
//! is silently lost and they can be replayed. Once a line is written and
//! synced, the event counts as settled: it is durably recorded.
//!
//! Line format: `{"time":…,"output":…,"reason":…,"tag":…,"event":{…}}`, the
//! event byte for byte as it would have been sent.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};

use crate::event::Event;

/// Writing the dead-letter file failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to write the dead-letter file `{}`", path.display())]
pub struct DeadLetterError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// An append-only NDJSON file of rejected events, opened on first use.
#[derive(Debug)]
pub struct DeadLetter {
    path: PathBuf,
    output: String,
    file: Option<File>,
}

impl DeadLetter {
    pub fn new(path: PathBuf, output: &str) -> Self {
        Self {
            path,
            output: output.to_owned(),
            file: None,
        }
    }

    /// The default place: `<data_dir>/dead-letter/<output>.ndjson`.
    pub fn default_path(data_dir: &Path, output: &str) -> PathBuf {
        let file = crate::config::file_name_for(output);
        data_dir.join("dead-letter").join(format!("{file}.ndjson"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `events` with their reasons and syncs. Rejections are rare,
    /// so this blocking write stays on the output's task.
    pub fn write(&mut self, events: &[(&Event, &str)]) -> Result<(), DeadLetterError> {
        if events.is_empty() {
            return Ok(());
        }
        let wrap = |source| DeadLetterError {
            path: self.path.clone(),
            source,
        };
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut buf = Vec::new();
        for (event, reason) in events {
            buf.extend_from_slice(b"{\"time\":\"");
            buf.extend_from_slice(time.as_bytes());
            buf.extend_from_slice(b"\",\"output\":");
            write_json_string(&mut buf, &self.output);
            buf.extend_from_slice(b",\"reason\":");
            write_json_string(&mut buf, reason);
            buf.extend_from_slice(b",\"tag\":");
            write_json_string(&mut buf, event.tag.as_str());
            buf.extend_from_slice(b",\"event\":");
            event.record.write_json(&mut buf);
            buf.extend_from_slice(b"}\n");
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                if let Some(parent) = self.path.parent() {
                    std::fs::create_dir_all(parent).map_err(wrap)?;
                }
                let mut options = OpenOptions::new();
                options.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                self.file.insert(options.open(&self.path).map_err(wrap)?)
            }
        };
        let result = file.write_all(&buf).and_then(|()| file.sync_data());
        if let Err(e) = result {
            // Reopen next time: the handle may be unusable.
            self.file = None;
            return Err(wrap(e));
        }
        Ok(())
    }
}

fn write_json_string(buf: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *buf, text).expect("serialising a str into a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Ack, Record, Tag};

    #[test]
    fn appends_one_line_per_event_with_reason_and_original_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = DeadLetter::default_path(dir.path(), "es/main");
        assert!(path.ends_with("dead-letter/es_main.ndjson"));
        let mut dl = DeadLetter::new(path.clone(), "es/main");
        let raw = r#"{"auditID":"a",  "stage":"ResponseComplete"}"#;
        let event = Event::new(
            Tag::new("audit"),
            Utc::now(),
            Record::from_json(raw.into()).unwrap(),
            Ack::none(),
        );
        dl.write(&[(&event, "status 400: mapper_parsing_exception")])
            .unwrap();
        dl.write(&[(&event, "again \"quoted\"")]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].ends_with(&format!(",\"event\":{raw}}}")),
            "{}",
            lines[0]
        );
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["reason"], "status 400: mapper_parsing_exception");
        assert_eq!(first["output"], "es/main");
        assert_eq!(first["tag"], "audit");
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["reason"], "again \"quoted\"");
    }
}
