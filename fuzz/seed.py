#!/usr/bin/env python3
"""Seeds each fuzz target's corpus (fuzz/corpus/<target>/) from the
repository's own data: tests/data (real audit events, webhook bodies,
policies, legacy lines, config error cases), examples/, conf/ and docs/.

Seeds are kept small (at most MAX_SEED bytes): large inputs slow every run
and the fuzzer grows what it needs. Run from anywhere: python3 fuzz/seed.py
"""

import gzip
import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
MAX_SEED = 16 * 1024

# webhook_body's first byte: content type in bits 0-2 (0 none, 1 json,
# 2 ndjson), 3-4 gzip mode (0 plain, 1 body sent as is but declared gzip,
# 2 gzipped by the target), bit 5 reads stageTimestamp.
JSON, NDJSON, GZIP_AS_IS, GZIP_BY_TARGET, TIME = 1, 2, 1 << 3, 2 << 3, 1 << 5

counts = {}


def add(target, data):
    if isinstance(data, str):
        data = data.encode()
    if not data or len(data) > MAX_SEED:
        return
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    path = folder / name
    if not path.exists():
        path.write_bytes(data)
        counts[target] = counts.get(target, 0) + 1


def lines(path):
    return (ROOT / path).read_text(encoding="utf-8", errors="replace").splitlines()


def files(pattern):
    return sorted(ROOT.glob(pattern))


# Real audit events, one JSON object each (small ones only).
events = []
for path in files("tests/data/fixtures/events/*.jsonl") + files("examples/data/audit-events.jsonl"):
    for line in lines(path.relative_to(ROOT))[:40]:
        if line.strip() and len(line) < 4096:
            events.append(line)

# --- webhook_body
def body(selector, text):
    add("webhook_body", bytes([selector]) + text.encode())


for path in files("tests/data/fixtures/webhook/*.json") + files("tests/data/netout/webhook-*.json"):
    doc = json.loads(path.read_text())
    items = doc.get("items") or []
    for n in (0, 1, 3):
        small = dict(doc, items=items[:n])
        body(JSON, json.dumps(small, separators=(",", ":")))
    body(JSON | TIME, json.dumps(dict(doc, items=items[:2]), indent=2))
    if items:
        body(JSON, json.dumps(items[0]))
        body(JSON | TIME, json.dumps(items[:3]))
for line in lines("examples/data/webhook-eventlists.jsonl")[:10]:
    body(JSON, line)
for i in range(0, min(len(events), 60), 3):
    group = events[i : i + 3]
    body(NDJSON, "\n".join(group) + "\n")
    body(NDJSON | TIME, "\r\n".join(group))
    body(JSON | GZIP_BY_TARGET, '{"kind":"EventList","items":[' + ",".join(group) + "]}")
    add("webhook_body", bytes([NDJSON | GZIP_AS_IS]) + gzip.compress("\n".join(group).encode()))
for text in ('{"kind":"EventList","items":null}', "[]", "{}", '{"kind":"Event"}'):
    body(JSON, text)

# --- audit_lines: access records and legacy lines, alone and in runs.
for path in ["examples/data/access-records.jsonl", "examples/data/legacy-audit.log"] + [
    str(p.relative_to(ROOT)) for p in files("tests/data/fixtures/legacy/*.log")
]:
    all_lines = lines(path)
    for line in all_lines:
        add("audit_lines", line)
    for i in range(0, len(all_lines), 4):
        add("audit_lines", "\n".join(all_lines[i : i + 6]) + "\n")

# --- policy: policy files, and the conformance cases' policies as JSON and
# (behind a comment, so the YAML parser reads them) as YAML flow maps.
for path in (
    files("conf/policies/*.yaml")
    + files("tests/data/fixtures/policies/*.yaml")
    + files("tests/data/audit/*.yaml")
    + files("tests/data/fixtures/real-apiserver/policy.yaml")
):
    add("policy", path.read_bytes())
for name in ("policy-cases", "validation-cases"):
    doc = json.loads((ROOT / f"tests/data/conformance/{name}.json").read_text())
    for case in doc["cases"]:
        policy = case.get("policy")
        if policy is not None:
            add("policy", json.dumps(policy))
            add("policy", "# yaml\n" + json.dumps(policy, indent=1))

# --- config: every example, the packaged config, the error cases, and the
# TOML blocks of the docs.
for path in files("examples/*.toml") + files("conf/*.toml") + files("tests/config_errors/*.toml"):
    add("config", path.read_bytes())
toml_block = re.compile(r"```toml\n(.*?)```", re.S)
for path in files("docs/*.md") + files("README.md"):
    for block in toml_block.findall(path.read_text()):
        add("config", block)

# --- dsl: expressions and templates as the configs and docs write them.
# Selector: 0 expression, 1 plain template, 2 path template, 3 pattern.
EXPR_KEYS = {"condition": 0, "when": 0, "tag": 1, "path": 2, "index": 2, "pattern": 3}
key_value = re.compile(r"""^\s*(\w+)\s*=\s*(?:'([^']*)'|"((?:[^"\\]|\\.)*)")\s*$""")
toml_texts = [p.read_text() for p in files("examples/*.toml") + files("conf/*.toml") + files("tests/config_errors/*.toml")]
for path in files("docs/*.md"):
    toml_texts.extend(toml_block.findall(path.read_text()))
for text in toml_texts:
    for line in text.splitlines():
        m = key_value.match(line)
        if not m:
            continue
        key, literal, basic = m.groups()
        value = literal if literal is not None else basic.encode().decode("unicode_escape")
        if key in EXPR_KEYS:
            add("dsl", bytes([EXPR_KEYS[key]]) + value.encode())
        else:
            # `set` fields and other values: try both as expression and template.
            add("dsl", b"\x00" + value.encode())
            add("dsl", b"\x01" + value.encode())
code_span = re.compile(r"`([^`\n]+)`")
for span in code_span.findall((ROOT / "docs/dsl.md").read_text()):
    add("dsl", b"\x00" + span.encode())
    if "${" in span or "%" in span:
        add("dsl", b"\x01" + span.encode())
        add("dsl", b"\x02" + span.encode())

for target in sorted(counts):
    print(f"{target}: {counts[target]} new seeds in fuzz/corpus/{target}")
