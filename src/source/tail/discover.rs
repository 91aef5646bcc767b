//! Finds the files a tail source reads: `paths` globs minus `exclude` globs.
//! A glob is split into its literal base directory and the pattern below it;
//! only that directory (and as many levels below as the pattern has, or all
//! for `**`) is listed, never the whole tree. `*` stops at `/`.

use std::fs;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Directory levels `**` descends at most (against symlink loops and
/// runaway trees).
const MAX_DEPTH: usize = 32;

/// A glob that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid glob `{pattern}`: {message}")]
pub(super) struct GlobError {
    pub(super) pattern: String,
    pub(super) message: String,
}

/// Where to list, and how deep.
#[derive(Debug, Clone)]
enum Root {
    /// A pattern without wildcards: just this path.
    Literal(PathBuf),
    /// List `dir`, `depth` levels down (`None`: any depth, for `**`).
    Walk { dir: PathBuf, depth: Option<usize> },
}

/// The compiled `paths` and `exclude` of one source.
#[derive(Debug, Clone)]
pub(super) struct Globs {
    include: GlobSet,
    /// Exclude patterns with a `/`, matched against the whole path.
    exclude_path: GlobSet,
    /// Exclude patterns without a `/` (`*.gz`), matched against the name.
    exclude_name: GlobSet,
    roots: Vec<Root>,
    /// The `paths` patterns as written, in order (the include set's indices).
    patterns: Vec<String>,
}

/// What one scan found.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// Matching regular files (symlinks to them included), sorted.
    pub(super) files: Vec<PathBuf>,
    /// Directories that were listed, to be watched for changes.
    pub(super) dirs: Vec<PathBuf>,
    /// `paths` patterns (by index) that matched no file.
    pub(super) unmatched: Vec<usize>,
}

/// A `paths` glob that matches no file, and why, for warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unmatched {
    pub(crate) index: usize,
    pub(crate) pattern: String,
    /// `does not exist` when the directory it lists is missing.
    pub(crate) reason: String,
}

impl std::fmt::Display for Unmatched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` {}", self.pattern, self.reason)
    }
}

fn glob(pattern: &str) -> Result<globset::Glob, GlobError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| GlobError {
            pattern: pattern.to_owned(),
            message: e.kind().to_string(),
        })
}

fn has_wildcard(part: &str) -> bool {
    part.contains(['*', '?', '[', '{', '\\'])
}

impl Globs {
    pub(super) fn new(paths: &[String], exclude: &[String]) -> Result<Self, GlobError> {
        let mut include = GlobSetBuilder::new();
        let mut roots = Vec::new();
        for pattern in paths {
            include.add(glob(pattern)?);
            roots.push(root_of(pattern));
        }
        let mut exclude_path = GlobSetBuilder::new();
        let mut exclude_name = GlobSetBuilder::new();
        for pattern in exclude {
            if pattern.contains('/') {
                exclude_path.add(glob(pattern)?);
            } else {
                exclude_name.add(glob(pattern)?);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| GlobError {
                pattern: paths.join(", "),
                message: e.to_string(),
            })
        };
        Ok(Self {
            include: build(include)?,
            exclude_path: build(exclude_path)?,
            exclude_name: build(exclude_name)?,
            roots,
            patterns: paths.to_vec(),
        })
    }

    /// Whether `path` is one of this source's files.
    pub(super) fn matches(&self, path: &Path) -> bool {
        if !self.include.is_match(path) || self.exclude_path.is_match(path) {
            return false;
        }
        path.file_name()
            .is_none_or(|name| !self.exclude_name.is_match(name))
    }

    /// Lists every matching file now.
    pub(super) fn scan(&self) -> Found {
        let mut found = Found::default();
        for root in &self.roots {
            match root {
                Root::Literal(path) => {
                    if let Some(dir) = path.parent().filter(|d| d.is_dir()) {
                        found.dirs.push(dir.to_owned());
                    }
                    if fs::metadata(path).is_ok_and(|m| m.is_file()) && self.matches(path) {
                        found.files.push(path.clone());
                    }
                }
                Root::Walk { dir, depth } => {
                    let levels = depth.unwrap_or(MAX_DEPTH);
                    self.walk(dir, levels, depth.is_none(), &mut found);
                }
            }
        }
        found.files.sort();
        found.files.dedup();
        found.dirs.sort();
        found.dirs.dedup();
        let mut matched = vec![false; self.patterns.len()];
        for file in &found.files {
            for index in self.include.matches(file) {
                matched[index] = true;
            }
        }
        found.unmatched = (0..matched.len()).filter(|&i| !matched[i]).collect();
        found
    }

    /// The patterns of `indices`, with why each matches nothing.
    pub(super) fn describe(&self, indices: &[usize]) -> Vec<Unmatched> {
        indices
            .iter()
            .map(|&index| {
                let dir = match &self.roots[index] {
                    Root::Literal(path) => path.parent().map(Path::to_owned),
                    Root::Walk { dir, .. } => Some(dir.clone()),
                };
                let reason = match dir {
                    Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
                        format!(
                            "matches no file: directory `{}` does not exist",
                            dir.display()
                        )
                    }
                    _ => "matches no file".to_owned(),
                };
                Unmatched {
                    index,
                    pattern: self.patterns[index].clone(),
                    reason,
                }
            })
            .collect()
    }

    fn walk(&self, dir: &Path, levels: usize, any_depth: bool, found: &mut Found) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        found.dirs.push(dir.to_owned());
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            // Files are followed through symlinks; directories are not under
            // `**` (loops), but are for fixed-depth patterns.
            let metadata = if kind.is_symlink() {
                match fs::metadata(&path) {
                    Ok(m) => m,
                    Err(_) => continue,
                }
            } else {
                match entry.metadata() {
                    Ok(m) => m,
                    Err(_) => continue,
                }
            };
            if metadata.is_file() {
                if (levels == 1 || any_depth) && self.matches(&path) {
                    found.files.push(path);
                }
            } else if metadata.is_dir() && levels > 1 && !(any_depth && kind.is_symlink()) {
                self.walk(&path, levels - 1, any_depth, found);
            }
        }
    }
}

/// How often a glob that still matches nothing is warned about again.
const UNMATCHED_WARN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// Warns about `paths` globs that match no file: at the first scan, when a
/// glob stops matching, and every [`UNMATCHED_WARN_INTERVAL`] while any still
/// matches nothing; a wrong path must not ship nothing silently forever.
#[derive(Debug, Default)]
pub(super) struct UnmatchedGlobs {
    current: Vec<usize>,
    last_warned: Option<std::time::Instant>,
}

impl UnmatchedGlobs {
    /// Takes the result of a scan; returns how many globs match nothing.
    pub(super) fn update(
        &mut self,
        source: &str,
        globs: &Globs,
        unmatched: &[usize],
        now: std::time::Instant,
    ) -> usize {
        let newly = unmatched.iter().any(|i| !self.current.contains(i));
        let due = self
            .last_warned
            .is_none_or(|at| now.duration_since(at) >= UNMATCHED_WARN_INTERVAL);
        if !unmatched.is_empty() && (newly || due) {
            for glob in globs.describe(unmatched) {
                tracing::warn!(
                    source,
                    glob = %glob.pattern,
                    "A `paths` glob of a tail source {}; nothing is read from it until a file appears.",
                    glob.reason
                );
            }
            self.last_warned = Some(now);
        }
        for &index in self.current.iter().filter(|i| !unmatched.contains(i)) {
            tracing::info!(source, glob = %globs.patterns[index], "A `paths` glob matches files again.");
        }
        if unmatched.is_empty() {
            self.last_warned = None;
        }
        self.current = unmatched.to_vec();
        unmatched.len()
    }
}

fn root_of(pattern: &str) -> Root {
    let path = Path::new(pattern);
    let mut base = PathBuf::new();
    let mut rest = Vec::new();
    for component in path.components() {
        let text = component.as_os_str().to_string_lossy();
        if rest.is_empty() && !has_wildcard(&text) {
            base.push(component);
        } else {
            rest.push(text.into_owned());
        }
    }
    if rest.is_empty() {
        return Root::Literal(path.to_owned());
    }
    if base.as_os_str().is_empty() || base.components().all(|c| c == Component::CurDir) {
        base = PathBuf::from(".");
    }
    let depth = if rest.iter().any(|part| part.contains("**")) {
        None
    } else {
        Some(rest.len())
    };
    Root::Walk { dir: base, depth }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x\n").unwrap();
    }

    fn names(dir: &Path, found: &Found) -> Vec<String> {
        found
            .files
            .iter()
            .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn star_stops_at_slash_and_excludes_apply() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            "audit.log",
            "audit-1.log",
            "audit-0.log.gz",
            "sub/audit.log",
            "other.txt",
        ] {
            touch(&d.join(name));
        }
        let globs = Globs::new(&[format!("{}/audit*", d.display())], &["*.gz".to_owned()]).unwrap();
        assert_eq!(names(d, &globs.scan()), ["audit-1.log", "audit.log"]);
    }

    #[test]
    fn fixed_depth_and_double_star() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["a/x/1.log", "a/y/2.log", "a/3.log", "a/x/deep/4.log"] {
            touch(&d.join(name));
        }
        let fixed = Globs::new(&[format!("{}/a/*/*.log", d.display())], &[]).unwrap();
        assert_eq!(names(d, &fixed.scan()), ["a/x/1.log", "a/y/2.log"]);
        let any = Globs::new(&[format!("{}/a/**/*.log", d.display())], &[]).unwrap();
        assert_eq!(
            names(d, &any.scan()),
            ["a/3.log", "a/x/1.log", "a/x/deep/4.log", "a/y/2.log"]
        );
    }

    #[test]
    fn literal_paths_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(&d.join("real/target.log"));
        std::os::unix::fs::symlink(d.join("real/target.log"), d.join("link.log")).unwrap();
        std::os::unix::fs::symlink(d.join("real/missing.log"), d.join("dangling.log")).unwrap();
        let globs = Globs::new(&[format!("{}/*.log", d.display())], &[]).unwrap();
        assert_eq!(names(d, &globs.scan()), ["link.log"]);
        let literal = Globs::new(&[format!("{}/link.log", d.display())], &[]).unwrap();
        assert_eq!(names(d, &literal.scan()), ["link.log"]);
        let absent = Globs::new(&[format!("{}/nope.log", d.display())], &[]).unwrap();
        assert!(absent.scan().files.is_empty());
    }

    #[test]
    fn globs_that_match_nothing_are_named_with_why() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(&d.join("logs/audit.log"));
        let patterns = [
            format!("{}/logs/*.log", d.display()),
            format!("{}/logs/*.json", d.display()),
            format!("{}/missing/*.log", d.display()),
            format!("{}/logs/audit.log", d.display()),
        ];
        let globs = Globs::new(&patterns, &[]).unwrap();
        let found = globs.scan();
        assert_eq!(found.unmatched, [1, 2]);
        let described = globs.describe(&found.unmatched);
        assert_eq!(described[0].reason, "matches no file");
        assert_eq!(
            described[1].to_string(),
            format!(
                "`{}` matches no file: directory `{}` does not exist",
                patterns[2],
                d.join("missing").display()
            )
        );
    }

    #[test]
    fn unmatched_globs_are_warned_at_first_then_every_interval() {
        let globs = Globs::new(&["/nonexistent-dir/*.log".to_owned()], &[]).unwrap();
        let start = std::time::Instant::now();
        let mut report = UnmatchedGlobs::default();
        assert_eq!(report.update("s", &globs, &[0], start), 1);
        assert_eq!(report.last_warned, Some(start));
        let soon = start + std::time::Duration::from_secs(1);
        report.update("s", &globs, &[0], soon);
        assert_eq!(report.last_warned, Some(start), "not again right away");
        let later = start + UNMATCHED_WARN_INTERVAL;
        report.update("s", &globs, &[0], later);
        assert_eq!(report.last_warned, Some(later));
        assert_eq!(report.update("s", &globs, &[], later), 0);
        assert_eq!(report.last_warned, None);
    }

    #[test]
    fn bad_globs_are_reported() {
        let err = Globs::new(&["/var/log/[a.log".to_owned()], &[]).unwrap_err();
        assert_eq!(err.pattern, "/var/log/[a.log");
    }
}
