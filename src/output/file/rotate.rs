//! Size rotation and retention, as kube-apiserver's log backend (lumberjack)
//! does them: the full file is renamed with its UTC rotation time before
//! the extension (`audit.log.gz` → `audit-2026-11-22T10-00-00.000.log.gz`)
//! and a new one is started; then backups beyond `max_backups` or older than
//! `max_age` are deleted. Only names of exactly that shape, made from the
//! rotated file's own name, are ever deleted.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};

/// The time source for rotation names and retention (tests inject one).
pub(crate) trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Which backups to keep.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Retention {
    /// Keep at most this many backups per file; 0 keeps all.
    pub(crate) max_backups: usize,
    /// Delete backups rotated longer ago than this; `None` keeps all.
    pub(crate) max_age: Option<std::time::Duration>,
}

const STAMP_FORMAT: &str = "%Y-%m-%dT%H-%M-%S%.3f";
/// `2026-11-22T10-00-00.000`
const STAMP_LEN: usize = 23;

/// Splits a file name into stem and extension; a `.gz` extension takes the
/// one before it along (`a.b.log.gz` → `a.b`, `.log.gz`).
pub(crate) fn split_name(name: &str) -> (&str, &str) {
    let ext_start = |stem: &str| stem.rfind('.').filter(|&i| i > 0);
    let Some(last) = ext_start(name) else {
        return (name, "");
    };
    let start = if &name[last..] == ".gz" {
        ext_start(&name[..last]).unwrap_or(last)
    } else {
        last
    };
    (&name[..start], &name[start..])
}

/// The backup name of `name` rotated at `at`.
pub(crate) fn backup_name(name: &str, at: DateTime<Utc>) -> String {
    let (stem, ext) = split_name(name);
    format!("{stem}-{}{ext}", at.format(STAMP_FORMAT))
}

/// The rotation time of `candidate` if it is a backup of `name`.
pub(crate) fn parse_backup(name: &str, candidate: &str) -> Option<DateTime<Utc>> {
    let (stem, ext) = split_name(name);
    let stamp = candidate
        .strip_prefix(stem)?
        .strip_prefix('-')?
        .strip_suffix(ext)?;
    if stamp.len() != STAMP_LEN {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, STAMP_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

/// Renames `path` to a backup name not yet taken; returns the new path.
pub(crate) fn rotate(path: &Path, clock: &dyn Clock) -> io::Result<PathBuf> {
    let name = file_name(path)?;
    // Backups sort in rotation order by name: a rotation within the same
    // millisecond as the newest backup (or after it was pruned and its name
    // freed) takes the millisecond after the newest one.
    let newest = backups(path)?.into_iter().map(|(at, _)| at).max();
    let mut at = clock.now();
    if let Some(newest) = newest
        && at <= newest
    {
        at = newest + chrono::TimeDelta::milliseconds(1);
    }
    for _ in 0..1000 {
        let target = path.with_file_name(backup_name(name, at));
        if !target.exists() {
            std::fs::rename(path, &target)?;
            return Ok(target);
        }
        at += chrono::TimeDelta::milliseconds(1);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free backup name for this millisecond",
    ))
}

/// The backups of `path` in its directory, with their rotation times.
fn backups(path: &Path) -> io::Result<Vec<(DateTime<Utc>, PathBuf)>> {
    let name = file_name(path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut backups = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let candidate = entry.file_name();
        let Some(candidate) = candidate.to_str() else {
            continue;
        };
        if let Some(at) = parse_backup(name, candidate)
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            backups.push((at, entry.path()));
        }
    }
    Ok(backups)
}

/// Deletes the backups of `path` that `retention` does not keep; returns
/// the deleted paths.
pub(crate) fn prune(
    path: &Path,
    retention: Retention,
    clock: &dyn Clock,
) -> io::Result<Vec<PathBuf>> {
    if retention.max_backups == 0 && retention.max_age.is_none() {
        return Ok(Vec::new());
    }
    let mut backups = backups(path)?;
    // Newest first.
    backups.sort_by_key(|b| std::cmp::Reverse(b.0));
    let cutoff = retention
        .max_age
        .and_then(|age| chrono::TimeDelta::from_std(age).ok())
        .map(|age| clock.now() - age);
    let mut removed = Vec::new();
    for (n, (at, backup)) in backups.into_iter().enumerate() {
        let too_many = retention.max_backups > 0 && n >= retention.max_backups;
        let too_old = cutoff.is_some_and(|cutoff| at < cutoff);
        if too_many || too_old {
            match std::fs::remove_file(&backup) {
                Ok(()) => removed.push(backup),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

fn file_name(path: &Path) -> io::Result<&str> {
    path.file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no UTF-8 file name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::Mutex;

    /// A clock the test moves by hand.
    struct ManualClock(Mutex<DateTime<Utc>>);

    impl ManualClock {
        fn at(y: i32, mo: u32, d: u32, h: u32) -> Self {
            Self(Mutex::new(Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()))
        }
        fn advance(&self, delta: chrono::TimeDelta) {
            *self.0.lock().unwrap() += delta;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn names_follow_lumberjack() {
        assert_eq!(split_name("audit.log.gz"), ("audit", ".log.gz"));
        assert_eq!(split_name("audit.log"), ("audit", ".log"));
        assert_eq!(
            split_name("a.kube-system.2026112210.log.gz"),
            ("a.kube-system.2026112210", ".log.gz")
        );
        assert_eq!(split_name("audit"), ("audit", ""));
        assert_eq!(split_name("x.gz"), ("x", ".gz"));
        assert_eq!(split_name(".hidden"), (".hidden", ""));
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        assert_eq!(
            backup_name("audit.log.gz", at),
            "audit-2026-11-22T10-00-00.000.log.gz"
        );
        assert_eq!(
            parse_backup("audit.log.gz", "audit-2026-11-22T10-00-00.000.log.gz"),
            Some(at)
        );
        for other in [
            "audit.log.gz",
            "audit-2026-11-22T10-00-00.000.log",
            "audit-x-2026-11-22T10-00-00.000.log.gz",
            "audit2-2026-11-22T10-00-00.000.log.gz",
            "audit-2026-11-22T10-00-00.log.gz",
        ] {
            assert_eq!(parse_backup("audit.log.gz", other), None, "{other}");
        }
    }

    #[test]
    fn rotate_picks_a_free_name_within_one_millisecond() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(2026, 11, 22, 10);
        let path = dir.path().join("audit.log");
        for n in 0..3 {
            std::fs::write(&path, format!("{n}")).unwrap();
            rotate(&path, &clock).unwrap();
        }
        assert_eq!(
            names(dir.path()),
            [
                "audit-2026-11-22T10-00-00.000.log",
                "audit-2026-11-22T10-00-00.001.log",
                "audit-2026-11-22T10-00-00.002.log"
            ]
        );
        let newest = dir.path().join("audit-2026-11-22T10-00-00.002.log");
        assert_eq!(std::fs::read_to_string(newest).unwrap(), "2");
    }

    #[test]
    fn a_name_freed_by_pruning_is_not_reused_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(2026, 11, 22, 10);
        let path = dir.path().join("audit.log");
        for n in 0..2 {
            std::fs::write(&path, format!("{n}")).unwrap();
            rotate(&path, &clock).unwrap();
        }
        // The oldest backup is pruned within the same millisecond...
        std::fs::remove_file(dir.path().join("audit-2026-11-22T10-00-00.000.log")).unwrap();
        std::fs::write(&path, "2").unwrap();
        let newest = rotate(&path, &clock).unwrap();
        // ...and the next rotation still sorts after every kept backup.
        assert_eq!(
            newest.file_name().unwrap(),
            "audit-2026-11-22T10-00-00.002.log"
        );
    }

    #[test]
    fn prune_keeps_max_backups_newest_and_touches_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(2026, 11, 22, 10);
        let path = dir.path().join("audit.log.gz");
        let bystanders = [
            "audit.log.gz",
            "other-2026-11-22T10-00-00.000.log.gz",
            "audit-notes.txt",
        ];
        for b in bystanders {
            std::fs::write(dir.path().join(b), b"keep").unwrap();
        }
        for _ in 0..5 {
            std::fs::write(&path, b"x").unwrap();
            rotate(&path, &clock).unwrap();
            clock.advance(chrono::TimeDelta::minutes(1));
        }
        std::fs::write(&path, b"current").unwrap();
        let retention = Retention {
            max_backups: 2,
            max_age: None,
        };
        let removed = prune(&path, retention, &clock).unwrap();
        assert_eq!(removed.len(), 3);
        let left = names(dir.path());
        assert!(
            left.contains(&"audit-2026-11-22T10-04-00.000.log.gz".to_owned()),
            "{left:?}"
        );
        assert!(
            left.contains(&"audit-2026-11-22T10-03-00.000.log.gz".to_owned()),
            "{left:?}"
        );
        for b in bystanders {
            assert!(left.contains(&b.to_owned()), "{b} was deleted");
        }
        assert_eq!(left.len(), 2 + bystanders.len());
    }

    #[test]
    fn prune_deletes_backups_older_than_max_age_by_the_injected_clock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(2026, 1, 1, 0);
        let path = dir.path().join("audit.log");
        for _ in 0..4 {
            std::fs::write(&path, b"x").unwrap();
            rotate(&path, &clock).unwrap();
            clock.advance(chrono::TimeDelta::days(10));
        }
        // Backups at day 0, 10, 20, 30; now is day 40.
        let retention = Retention {
            max_backups: 0,
            max_age: Some(std::time::Duration::from_secs(15 * 86_400)),
        };
        // The cutoff is day 25: days 0, 10 and 20 go.
        assert_eq!(prune(&path, retention, &clock).unwrap().len(), 3);
        assert_eq!(names(dir.path()), ["audit-2026-01-31T00-00-00.000.log"]);
        clock.advance(chrono::TimeDelta::days(366));
        assert_eq!(prune(&path, retention, &clock).unwrap().len(), 1);
        assert!(names(dir.path()).is_empty());
    }
}
