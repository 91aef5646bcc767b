//! The file output's side of its `path` template (a DSL path template):
//! the base directory every rendered path must stay in, re-checked per
//! event after rendering, and the time slice the template's strftime fields
//! make, which decides when a file can be closed.

use crate::dsl::{Part, Template};

/// Whether a rendered path stays inside `base_dir` (ending in `/`, or
/// empty for the working directory): no `.`/`..` or NUL in the rest, no
/// component over 255 bytes, 4096 bytes at most in all. Holes are already
/// sanitised; this catches what literal text and time fields could add.
pub(super) fn stays_within(base_dir: &str, path: &str) -> bool {
    let Some(rest) = path.strip_prefix(base_dir) else {
        return false;
    };
    if path.len() > 4096 || rest.is_empty() || rest.starts_with('/') || rest.contains('\0') {
        return false;
    }
    rest.split('/')
        .all(|part| part != "." && part != ".." && part.len() <= 255)
}

/// The directory part of the template's literal prefix: the default
/// `base_dir` (empty for a relative path without directories).
pub(super) fn default_base_dir(template: &Template) -> String {
    let prefix = template.static_prefix();
    match prefix.rfind('/') {
        Some(at) => prefix[..=at].to_owned(),
        None => String::new(),
    }
}

/// Length of the template's time slice in seconds when it has strftime
/// fields: the finest field decides, and coarser than a day counts as a
/// day. A time read inside a hole (`${strftime(...)}`) is not known here;
/// such files close when idle.
pub(super) fn slice_seconds(template: &Template) -> Option<i64> {
    template
        .parts()
        .iter()
        .filter_map(|part| match part {
            Part::Time(field) => field.spec().chars().last().and_then(spec_seconds),
            _ => None,
        })
        .min()
}

/// How long the value of one strftime field stays the same, roughly:
/// the time slice it makes. `None` for time-zone fields.
fn spec_seconds(spec: char) -> Option<i64> {
    const DAY: i64 = 86_400;
    Some(match spec {
        'S' | 's' | 'T' | 'X' | 'r' | 'c' | '+' | 'f' => 1,
        'M' | 'R' => 60,
        'H' | 'I' | 'k' | 'l' | 'p' | 'P' => 3_600,
        // Weeks, months and years close a day after their last event.
        'd' | 'e' | 'j' | 'a' | 'A' | 'u' | 'w' | 'D' | 'F' | 'x' | 'U' | 'W' | 'V' | 'G' | 'g'
        | 'm' | 'b' | 'B' | 'h' | 'Y' | 'y' | 'C' => DAY,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::TemplateKind;

    fn template(text: &str) -> Template {
        Template::compile(text, TemplateKind::Path).unwrap()
    }

    /// The cases of the file output's former template engine render the
    /// same through the DSL.
    #[test]
    fn file_paths_render_tag_parts_fields_defaults_and_time() {
        use crate::dsl::EvalContext;
        use crate::event::{Record, Tag};
        use chrono::{TimeZone, Utc};
        let record =
            Record::from_json(r#"{"objectRef":{"namespace":"ns1"},"n":7}"#.to_owned().into())
                .unwrap();
        let tag = Tag::new("audit.kube-system");
        let time = Utc.with_ymd_and_hms(2026, 11, 22, 10, 5, 9).unwrap();
        let cx = EvalContext::new(&record, &tag, time);
        let render = |text: &str| {
            let mut out = String::new();
            template(text).render_or_placeholder(&cx, &mut out);
            out
        };
        assert_eq!(
            render("/var/log/a-${tag}.%Y%m%d%H.log.gz"),
            "/var/log/a-audit.kube-system.2026112210.log.gz"
        );
        assert_eq!(render("/l/${tag_parts[1]}/x"), "/l/kube-system/x");
        assert_eq!(render("/l/${ objectRef.namespace ?? \"none\" }"), "/l/ns1");
        assert_eq!(render("/l/${objectRef.name ?? n ?? 'none'}"), "/l/7");
        assert_eq!(render("/l/${missing ?? \"no}ne\"}"), "/l/no}ne");
        assert_eq!(render("/l/${tag_parts[5]}"), "/l/_");
        assert_eq!(render("/l/$${tag}%%-%M%S"), "/l/${tag}%-0509");
    }

    #[test]
    fn rendered_paths_must_stay_in_the_base_dir() {
        assert!(stays_within("/var/log/", "/var/log/a/b.gz"));
        assert!(stays_within("", "a/b.gz"));
        for bad in [
            "/var/lo",
            "/var/log/",
            "/var/log//x",
            "/var/log/../x",
            "/var/log/a/./b",
            "/etc/x",
        ] {
            assert!(!stays_within("/var/log/", bad), "{bad}");
        }
        assert!(!stays_within(
            "/var/log/",
            &format!("/var/log/{}", "x".repeat(256))
        ));
        assert!(!stays_within("", "/abs"));
    }

    #[test]
    fn static_prefix_base_dir_and_slices() {
        let t = template("/var/log/audit-${tag}.%Y%m%d%H.gz");
        assert_eq!(t.static_prefix(), "/var/log/audit-");
        assert_eq!(default_base_dir(&t), "/var/log/");
        assert_eq!(slice_seconds(&t), Some(3600));
        assert!(!t.is_static());
        let t = template("/var/log/%Y/%m/%d/audit.log");
        assert_eq!(t.static_prefix(), "/var/log/");
        assert_eq!(slice_seconds(&t), Some(86_400));
        let t = template("/var/log/audit.log");
        assert!(t.is_static());
        assert_eq!(t.static_prefix(), "/var/log/audit.log");
        assert_eq!(slice_seconds(&t), None);
        let t = template("out/fluentd/audit-${tag}.%Y%m%d%H%M.log");
        assert_eq!(default_base_dir(&t), "out/fluentd/");
        assert_eq!(slice_seconds(&t), Some(60));
        assert_eq!(default_base_dir(&template("a-${tag}.log")), "");
        // `%%` is literal text, not a field.
        assert_eq!(slice_seconds(&template("/x/100%%.log")), None);
        assert_eq!(slice_seconds(&template("/x/%-d.%.3f")), Some(1));
    }
}
