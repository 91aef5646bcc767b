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
}

/// What one scan found.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// Matching regular files (symlinks to them included), sorted.
    pub(super) files: Vec<PathBuf>,
    /// Directories that were listed, to be watched for changes.
    pub(super) dirs: Vec<PathBuf>,
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
        found
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
    fn bad_globs_are_reported() {
        let err = Globs::new(&["/var/log/[a.log".to_owned()], &[]).unwrap_err();
        assert_eq!(err.pattern, "/var/log/[a.log");
    }
}
