//! `auditrail audit`, `policy check` and `policy explain`: exact outputs and exit
//! codes, legacy fixtures turned into their expected Events, and explain's decisions
//! against the Kubernetes policy conformance vectors.

use std::io::Write;
use std::process::{Output, Stdio};

use serde_json::{Value, json};

use crate::support::{Exit, auditrail, data, repo};

fn run_in_repo(args: &[&str]) -> Output {
    auditrail()
        .current_dir(repo(""))
        .args(args)
        .output()
        .expect("run auditrail")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8")
}

#[test]
fn policy_check_accepts_the_shipped_policies() {
    for (path, rules) in [
        ("conf/policies/k8s-website-example-audit-policy.yaml", 9),
        (
            "conf/policies/gce-configure-helper-master-audit-policy.yaml",
            17,
        ),
    ] {
        let out = run_in_repo(&["policy", "check", path]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{path}: ok ({rules} rules)\n"));
        assert_eq!(text(&out.stderr), "");
    }
}

#[test]
fn policy_check_lists_every_error_with_rule_index_and_exits_2() {
    let out = run_in_repo(&["policy", "check", "tests/data/audit/invalid-policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "error: policy `tests/data/audit/invalid-policy.yaml` is invalid\n  \
         rules[1].level: Unsupported value: \"Everything\": supported values: \"None\", \"Metadata\", \"Request\", \"RequestResponse\"\n  \
         rules[2].nonResourceURLs[0]: Invalid value: \"healthz\": non-resource URL rules must begin with a '/' character\n"
    );
}

#[test]
fn policy_check_refuses_zero_rules_missing_files_and_bad_yaml() {
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("empty.yaml");
    std::fs::write(
        &empty,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n",
    )
    .expect("write");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "rules: [\n").expect("write");
    let cases = [
        (empty.clone(), "has no rules"),
        (
            dir.path().join("missing.yaml"),
            "failed to read policy file",
        ),
        (broken.clone(), "failed to parse policy"),
    ];
    for (path, message) in cases {
        let out = auditrail()
            .args(["policy", "check"])
            .arg(&path)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{}", path.display());
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    }
}

fn explain(policy: &str, args: &[&str]) -> Value {
    let mut all = vec!["policy", "explain", "--policy", policy, "--output", "json"];
    all.extend_from_slice(args);
    let out = run_in_repo(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.ends_with('\n') && stdout.lines().count() == 1,
        "{stdout:?}"
    );
    serde_json::from_str(stdout).expect("JSON")
}

/// The docs' example policy, request by request, as its comments describe it.
#[test]
fn explain_json_follows_the_docs_example_policy() {
    let policy = "conf/policies/k8s-website-example-audit-policy.yaml";
    let rr = ["RequestReceived"];
    let cases: &[(&[&str], Value)] = &[
        (
            &[
                "--user",
                "alice",
                "--verb",
                "get",
                "--resource",
                "pods",
                "--namespace",
                "default",
            ],
            json!({"rule": 0, "level": "RequestResponse", "omit_stages": rr, "omit_managed_fields": false}),
        ),
        (
            &[
                "--user",
                "alice",
                "--verb",
                "get",
                "--resource",
                "pods",
                "--subresource",
                "log",
                "--namespace",
                "default",
            ],
            json!({"rule": 1, "level": "Metadata", "omit_stages": rr, "omit_managed_fields": false}),
        ),
        (
            &[
                "--user",
                "system:kube-controller-manager",
                "--verb",
                "update",
                "--resource",
                "configmaps",
                "--namespace",
                "kube-system",
                "--name",
                "controller-leader",
            ],
            json!({"rule": 2, "level": "None", "omit_stages": rr, "omit_managed_fields": false}),
        ),
        (
            &[
                "--user",
                "system:kube-proxy",
                "--verb",
                "watch",
                "--resource",
                "endpoints",
            ],
            json!({"rule": 3, "level": "None", "omit_stages": rr, "omit_managed_fields": false}),
        ),
        (
            &[
                "--user",
                "bob",
                "--group",
                "system:authenticated",
                "--verb",
                "get",
                "--path",
                "/apis/apps/v1",
            ],
            json!({"rule": 4, "level": "None", "omit_stages": rr, "omit_managed_fields": false}),
        ),
        (
            &["--user", "bob", "--verb", "get", "--path", "/version"],
            json!({"rule": 8, "level": "Metadata", "omit_stages": rr, "omit_managed_fields": false}),
        ),
        (
            &[
                "--user",
                "bob",
                "--verb",
                "update",
                "--resource",
                "configmaps",
                "--namespace",
                "kube-system",
                "--name",
                "other",
            ],
            json!({"rule": 5, "level": "Request", "omit_stages": rr, "omit_managed_fields": false}),
        ),
        (
            &[
                "--user",
                "bob",
                "--verb",
                "get",
                "--resource",
                "secrets",
                "--namespace",
                "default",
            ],
            json!({"rule": 6, "level": "Metadata", "omit_stages": rr, "omit_managed_fields": false}),
        ),
        (
            &[
                "--user",
                "bob",
                "--verb",
                "list",
                "--api-group",
                "extensions",
                "--resource",
                "ingresses",
            ],
            json!({"rule": 7, "level": "Request", "omit_stages": rr, "omit_managed_fields": false}),
        ),
        (
            &[
                "--user",
                "bob",
                "--verb",
                "list",
                "--api-group",
                "apps",
                "--resource",
                "deployments",
            ],
            json!({"rule": 8, "level": "Metadata", "omit_stages": rr, "omit_managed_fields": false}),
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(&explain(policy, args), expected, "{args:?}");
    }
}

/// A rule's `omitManagedFields` overrides the policy's; stages are the union; no
/// match is `null` and level `None` with the policy's defaults.
#[test]
fn explain_json_unions_stages_and_overrides_managed_fields() {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(
        b"apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [Panic]\nomitManagedFields: true\nrules:\n- level: Request\n  omitStages: [RequestReceived]\n  omitManagedFields: false\n  users: [alice]\n- level: RequestResponse\n  verbs: [create]\n",
    )
    .expect("write");
    let policy = file.path().to_str().expect("UTF-8 path");
    assert_eq!(
        explain(
            policy,
            &["--user", "alice", "--verb", "get", "--resource", "pods"]
        ),
        json!({"rule": 0, "level": "Request", "omit_stages": ["RequestReceived", "Panic"], "omit_managed_fields": false})
    );
    assert_eq!(
        explain(
            policy,
            &["--user", "bob", "--verb", "create", "--resource", "pods"]
        ),
        json!({"rule": 1, "level": "RequestResponse", "omit_stages": ["Panic"], "omit_managed_fields": true})
    );
    assert_eq!(
        explain(
            policy,
            &["--user", "bob", "--verb", "get", "--path", "/healthz"]
        ),
        json!({"rule": null, "level": "None", "omit_stages": ["Panic"], "omit_managed_fields": true})
    );
}

#[test]
fn explain_text_shows_the_rule_it_matched() {
    let out = run_in_repo(&[
        "policy",
        "explain",
        "--policy",
        "conf/policies/k8s-website-example-audit-policy.yaml",
        "--user",
        "alice",
        "--verb",
        "get",
        "--resource",
        "secrets",
        "--namespace",
        "default",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        "rule: 6\n  {\"level\":\"Metadata\",\"resources\":[{\"group\":\"\",\"resources\":[\"secrets\",\"configmaps\"]}]}\nlevel: Metadata\nomitStages: RequestReceived\nomitManagedFields: false\n"
    );
}

#[test]
fn explain_refuses_an_invalid_policy_and_mixed_flags() {
    let out = run_in_repo(&[
        "policy",
        "explain",
        "--policy",
        "tests/data/audit/invalid-policy.yaml",
        "--user",
        "a",
        "--verb",
        "get",
        "--path",
        "/x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("rules[1].level"));
    let out = run_in_repo(&[
        "policy",
        "explain",
        "--policy",
        "conf/policies/gce-configure-helper-master-audit-policy.yaml",
        "--user",
        "a",
        "--verb",
        "get",
        "--path",
        "/x",
        "--resource",
        "pods",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot be used with"));
}

/// Every public conformance vector the command line can express (an authenticated
/// user) gives kube-apiserver's decision through `policy explain`.
#[test]
fn explain_agrees_with_the_conformance_vectors() {
    let vectors: Value = serde_json::from_str(
        &std::fs::read_to_string(data("conformance/policy-cases.json")).expect("vectors"),
    )
    .expect("JSON");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut checked = 0;
    for (n, case) in vectors["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .enumerate()
    {
        let request = &case["request"];
        let Some(user) = request["user"].as_str() else {
            continue;
        };
        let policy = dir.path().join(format!("p{n}.json"));
        std::fs::write(&policy, case["policy"].to_string()).expect("write policy");
        let field = |key: &str| request[key].as_str().unwrap_or("").to_owned();
        let mut args = vec![
            "--user".to_owned(),
            user.to_owned(),
            "--verb".into(),
            field("verb"),
        ];
        for group in request["groups"].as_array().into_iter().flatten() {
            args.extend([
                "--group".to_owned(),
                group.as_str().expect("group").to_owned(),
            ]);
        }
        if request["resource_request"]
            .as_bool()
            .expect("resource_request")
        {
            for (flag, key) in [
                ("--resource", "resource"),
                ("--subresource", "subresource"),
                ("--namespace", "namespace"),
                ("--api-group", "api_group"),
                ("--name", "name"),
            ] {
                args.extend([flag.to_owned(), field(key)]);
            }
        } else {
            args.extend(["--path".to_owned(), field("path")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let got = explain(policy.to_str().expect("UTF-8 path"), &args);
        let expect = &case["expect"];
        let sorted = |v: &Value| {
            let mut stages: Vec<String> = v
                .as_array()
                .expect("stages")
                .iter()
                .map(|s| s.as_str().expect("stage").to_owned())
                .collect();
            stages.sort();
            stages
        };
        let name = case["name"].as_str().unwrap_or("?");
        assert_eq!(got["level"], expect["level"], "{name}");
        assert_eq!(
            sorted(&got["omit_stages"]),
            sorted(&expect["omit_stages"]),
            "{name}"
        );
        assert_eq!(
            got["omit_managed_fields"], expect["omit_managed_fields"],
            "{name}"
        );
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} vectors were expressible");
}

fn audit_command(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = auditrail()
        .current_dir(repo(""))
        .arg("audit")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run auditrail audit");
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&bytes));
    let out = child.wait_with_output().expect("wait");
    // A command that refuses its input exits without reading all of it.
    match writer.join().expect("writer") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write stdin: {e}"),
        _ => out,
    }
}

/// Each legacy fixture becomes exactly its expected Events (checked by hand; see
/// `tests/data/audit/README.md`).
#[test]
fn legacy_fixtures_become_their_expected_events() {
    let bless = std::env::var_os("AUDITRAIL_BLESS").is_some();
    for name in [
        "honeycomb-k8s-agent-tectonic-2017",
        "k8s-website-admin-audit-2016",
        "k8s-website-tasks-audit-2017",
    ] {
        let input = format!("tests/data/fixtures/legacy/{name}.log");
        let out = audit_command(
            &[
                "--policy",
                "tests/data/audit/metadata-all.yaml",
                "--format",
                "legacy",
                &input,
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "");
        let expected_path = data(&format!("audit/legacy/{name}.events.jsonl"));
        if bless {
            std::fs::write(&expected_path, &out.stdout).expect("bless");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).expect("expected events");
        assert_eq!(text(&out.stdout), expected, "{name}");
    }
}

#[test]
fn audit_reads_stdin_and_writes_a_private_output_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = dir.path().join("events.jsonl");
    let input =
        std::fs::read(data("fixtures/legacy/k8s-website-admin-audit-2016.log")).expect("fixture");
    let out = audit_command(
        &[
            "--policy",
            "tests/data/audit/metadata-all.yaml",
            "--format",
            "legacy",
            "-o",
            output.to_str().expect("UTF-8 path"),
        ],
        &input,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    let written = std::fs::read_to_string(&output).expect("output file");
    let expected = std::fs::read_to_string(data(
        "audit/legacy/k8s-website-admin-audit-2016.events.jsonl",
    ))
    .expect("expected");
    assert_eq!(written, expected);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&output)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Good lines are still audited; each bad one is reported by line number (never by
/// content) and the exit code is 1.
#[test]
fn audit_reports_bad_lines_by_number_and_exits_1() {
    let input = concat!(
        r#"{"id":"a1","time":"2026-11-22T10:00:00Z","method":"GET","uri":"/api/v1/pods","user":{"username":"u"},"status":200}"#,
        "\n",
        "not json at all, hunter2\n",
        "\n",
        r#"{"id":"a2","time":"2026-11-22T10:00:01Z","method":"GET","uri":"/api/v1/pods","user":{}}"#,
        "\n",
        r#"{"id":"a3","time":"2026-11-22T10:00:02Z","method":"GET","uri":"/api/v1/namespaces/x/pods","user":{"username":"u"},"status":200}"#,
    );
    let out = audit_command(
        &["--policy", "tests/data/audit/metadata-all.yaml"],
        input.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("<stdin>:2: access record is not valid JSON"),
        "{stderr}"
    );
    assert_eq!(lines[1], "<stdin>:4: access record has no `user.username`");
    assert_eq!(lines[2], "error: 2 of 5 lines could not be audited");
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let ids: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["auditID"].as_str().expect("id"),
                e["stage"].as_str().expect("stage"),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("a1", "RequestReceived"),
            ("a1", "ResponseComplete"),
            ("a3", "RequestReceived"),
            ("a3", "ResponseComplete")
        ]
    );
}

const TYPO_POLICY: &str = "tests/data/audit/unknown-key-policy.yaml";
const TYPO_ERROR: &str = "policy `tests/data/audit/unknown-key-policy.yaml` line 7, column 3: \
    unknown key `user` in a rule (did you mean `users`?); expected one of `level`, `users`, \
    `userGroups`, `verbs`, `resources`, `namespaces`, `nonResourceURLs`, `omitStages`, \
    `omitManagedFields`";

/// kube-apiserver decodes a policy strictly: `user:` for `users:` is an error with its
/// line and column, not a rule that silently matches every user.
#[test]
fn policy_commands_refuse_an_unknown_policy_key() {
    let out = run_in_repo(&["policy", "check", TYPO_POLICY]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(text(&out.stderr), format!("error: {TYPO_ERROR}\n"));
    let explain = run_in_repo(&[
        "policy",
        "explain",
        "--policy",
        TYPO_POLICY,
        "--user",
        "u",
        "--verb",
        "get",
        "--path",
        "/healthz",
    ]);
    assert_eq!(explain.status.code(), Some(2));
    assert_eq!(text(&explain.stderr), format!("error: {TYPO_ERROR}\n"));
    let audit = audit_command(&["--policy", TYPO_POLICY], b"");
    assert_eq!(audit.status.code(), Some(2));
    assert_eq!(text(&audit.stderr), format!("error: {TYPO_ERROR}\n"));
}

/// `check` and `run` load the policy a source or an `audit_policy` filter names through
/// the same loader, and refuse the config with the policy's line and column.
#[test]
fn check_and_run_refuse_a_config_naming_a_policy_with_an_unknown_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let by_source = format!(
        "[[source]]\ntype = \"stdin\"\ntag = \"audit\"\nformat = \"access_json\"\npolicy = \"{TYPO_POLICY}\"\n\n\
         [[output]]\ntype = \"stdout\"\nmatch = \"audit\"\n"
    );
    let by_filter = format!(
        "[[source]]\ntype = \"stdin\"\ntag = \"audit\"\n\n\
         [[filter]]\ntype = \"audit_policy\"\nmatch = \"audit\"\npolicy = \"{TYPO_POLICY}\"\n\n\
         [[output]]\ntype = \"stdout\"\nmatch = \"audit\"\n"
    );
    for (name, config, at) in [
        ("source.toml", by_source, "source.toml:5:10"),
        ("filter.toml", by_filter, "filter.toml:8:10"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, config).expect("write config");
        for command in ["check", "run"] {
            let out = auditrail()
                .current_dir(repo(""))
                .args([command, "-c"])
                .arg(&path)
                .stdin(Stdio::null())
                .output()
                .expect("run auditrail");
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} {name}: {stderr}");
            assert!(
                stderr.starts_with(&format!("error: invalid audit policy: {TYPO_ERROR}\n")),
                "{command} {name}: {stderr}"
            );
            assert!(stderr.contains(at), "{stderr}");
        }
    }
}

/// A reload that finds the policy edited into an unknown key keeps the running config.
#[test]
fn a_reload_refuses_a_policy_edited_to_have_an_unknown_key() {
    let policies = tempfile::tempdir().expect("temp dir");
    let policy = policies.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
    )
    .expect("write policy");
    let config = format!(
        "data_dir = \"{{dir}}\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n\
         [[source]]\nname = \"in\"\ntype = \"stdin\"\ntag = \"audit\"\nformat = \"access_json\"\npolicy = {policy:?}\n\n\
         [[output]]\nname = \"out\"\ntype = \"stdout\"\nmatch = \"audit\"\n",
        policy = policy.display().to_string(),
    );
    let mut agent = crate::support::Agent::builder().stdin().start(&config);
    agent.api();
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  user: [alice]\n- level: Metadata\n",
    )
    .expect("edit policy");
    agent.signal(libc::SIGHUP);
    assert!(
        crate::support::wait_until(std::time::Duration::from_secs(30), || {
            agent.log_count("Rejected the new config") > 0
        }),
        "no reload; log:\n{}",
        agent.log()
    );
    let log = agent.log();
    assert!(
        log.contains("line 5, column 3: unknown key `user` in a rule (did you mean `users`?)"),
        "{log}"
    );
    // The running policy (every request at Metadata) stays in effect.
    let mut stdin = agent.stdin.take().expect("stdin");
    writeln!(
        stdin,
        r#"{{"id":"r1","time":"2026-11-22T10:00:00Z","method":"GET","uri":"/api/v1/pods","user":{{"username":"alice"}},"status":200}}"#
    )
    .expect("write record");
    agent.stdin = Some(stdin);
    let Exit { status, lines, .. } = agent.finish();
    assert!(status.success(), "{status:?}");
    assert_eq!(lines.len(), 2, "{lines:?}");
}

/// Events (kube-apiserver's output) fed to `audit` are recognised from the first line
/// and refused once, not reported line by line.
#[test]
fn audit_says_once_that_events_are_not_raw_requests() {
    let log = std::fs::read_to_string(data("fixtures/real-apiserver/run1-batch/audit/audit.log"))
        .expect("audit log");
    let events: String = log.lines().take(500).map(|l| format!("{l}\n")).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let output = dir.path().join("out.jsonl");
    let out = audit_command(
        &[
            "--policy",
            "tests/data/audit/metadata-all.yaml",
            "-o",
            output.to_str().expect("UTF-8 path"),
        ],
        events.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: <stdin>:1: the input holds audit Events, not raw requests: `auditrail audit` \
         makes Events from access records (`--format access_json`) or kube-apiserver's legacy \
         `AUDIT:` lines (`--format legacy`); to apply a policy to existing Events, run them \
         through an `audit_policy` filter\n"
    );
    assert!(!output.exists(), "no output file for refused input");

    // Whatever the format, after blank lines, and for v1beta1 Events without `kind`.
    let out = audit_command(
        &[
            "--policy",
            "tests/data/audit/metadata-all.yaml",
            "--format",
            "legacy",
        ],
        b"\n{\"auditID\":\"x\",\"stage\":\"ResponseComplete\",\"verb\":\"get\"}\n",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: <stdin>:2: the input holds audit Events"),
        "{}",
        text(&out.stderr)
    );
    let out = audit_command(
        &["--policy", "tests/data/audit/metadata-all.yaml"],
        br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}"#,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("holds audit EventLists"));
}

fn explain_error(args: &[&str]) -> String {
    let mut all = vec![
        "policy",
        "explain",
        "--policy",
        "tests/data/audit/metadata-all.yaml",
        "--user",
        "u",
    ];
    all.extend_from_slice(args);
    let out = run_in_repo(&all);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    assert_eq!(text(&out.stdout), "");
    text(&out.stderr).to_owned()
}

#[test]
fn explain_without_a_request_names_resource_and_path() {
    assert_eq!(
        explain_error(&["--verb", "get"]),
        "error: `policy explain` needs the request: `--resource R` (with `--api-group`, \
         `--subresource`, `--namespace`, `--name` as needed) for a resource request, or \
         `--path URL` (e.g. `--path /healthz`) for a non-resource request\n"
    );
}

/// Policies match Kubernetes verbs case-sensitively, so an HTTP method never matches.
#[test]
fn explain_refuses_http_methods_with_the_verbs_they_become() {
    assert_eq!(
        explain_error(&["--verb", "GET", "--resource", "pods"]),
        "error: `--verb GET` is an HTTP method, and policies match Kubernetes verbs: for GET \
         that is `get`, `list` or `watch` (one object, a collection, or `?watch=true`)\n"
    );
    for (method, verbs) in [
        ("POST", "`create`"),
        ("PUT", "`update`"),
        ("PATCH", "`patch`"),
        ("DELETE", "`delete` or `deletecollection`"),
    ] {
        let stderr = explain_error(&["--verb", method, "--resource", "pods"]);
        assert!(
            stderr.contains(&format!("for {method} that is {verbs}")),
            "{stderr}"
        );
    }
    assert_eq!(
        explain_error(&["--verb", "GET", "--path", "/healthz"]),
        "error: `--verb GET` is an HTTP method; for a non-resource request (`--path`) the verb \
         is the lower-case method: `--verb get`\n"
    );
}
