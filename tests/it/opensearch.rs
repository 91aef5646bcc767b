//! The `elasticsearch` output against a real OpenSearch 2.19 node
//! (`tests/servers/opensearch`): the scenarios of `search_scenarios.rs`,
//! plus what only OpenSearch has here (ingest processors) or needs (its own
//! index template).

use serde_json::{Value, json};

use crate::search_scenarios::{
    config, dead_letters, expected, install_template, lines, real_events, run, scenario_tests,
    shipped_template, unique,
};
use crate::servers::{Product, shared};

const P: Product = Product::OpenSearch;

scenario_tests!(P);

/// The shipped template is for Elasticsearch: a real OpenSearch refuses
/// `flattened`, in its own words. The OpenSearch variant differs only in
/// `flat_object`, and the node accepts it.
#[test]
fn shipped_template_needs_its_opensearch_variant() {
    let node = shared(P);
    let elastic = shipped_template("audit-index-template.json");
    let mut body = elastic.clone();
    body["index_patterns"] = json!(["os-refused-*"]);
    let (status, answer) = node.request(
        "PUT",
        "/_index_template/os-refused",
        Some(&body.to_string()),
    );
    assert_eq!(status, 400, "{answer}");
    let reason = answer["error"]["caused_by"]["caused_by"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("No handler for type [flattened] declared on field"),
        "{answer}"
    );

    let mut opensearch = shipped_template("audit-index-template.opensearch.json");
    let mut translated = elastic;
    let text = translated["template"].to_string();
    translated["template"] =
        serde_json::from_str(&text.replace("\"flattened\"", "\"flat_object\"")).unwrap();
    opensearch["_meta"] = Value::Null;
    translated["_meta"] = Value::Null;
    assert_eq!(opensearch, translated);
    install_template(node, "os-accepted", &["os-accepted-*"], false);
}

/// `pipeline = ...` runs a real ingest pipeline (ingest-common's `set` and
/// `uppercase`) on every document.
#[test]
fn an_ingest_pipeline_runs_on_every_document() {
    let node = shared(P);
    node.ok(
        "PUT",
        "/_ingest/pipeline/os-pipeline",
        r#"{"processors":[
            {"set":{"field":"shipper","value":"auditrail"}},
            {"uppercase":{"field":"verb","target_field":"verb_upper"}}
        ]}"#,
    );
    let events = real_events();
    let config = config(
        node,
        "index = \"os-pipeline-%Y.%m.%d\"\npipeline = \"os-pipeline\"\nencode_bodies = true",
    );
    let agent = run(&config, &lines(&events));
    assert!(dead_letters(agent.dir.path()).is_empty());
    let index = "os-pipeline-2026.11.22";
    assert_eq!(
        node.count_term(index, "shipper.keyword", "auditrail"),
        unique(&events)
    );
    assert_eq!(
        node.count_term(index, "verb_upper.keyword", "PATCH"),
        expected(&events, "/verb", &json!("patch"))
    );
}
