//! What setup puts on a cluster, built from the shipped files: the index
//! template suited to the server (`flattened` on Elasticsearch,
//! `flat_object` on OpenSearch 2.7 and later), its index patterns from the
//! output's `index` or `data_stream`, and the lifecycle policy (ILM or ISM)
//! with the retention asked for.

use serde_json::{Value, json};

use super::server::{Flavor, Server, Version};
use crate::output::elasticsearch::ElasticsearchConfig;
use crate::output::elasticsearch::index::apply_index_rules;

const ELASTICSEARCH_TEMPLATE: &str =
    include_str!("../../../../conf/elasticsearch/audit-index-template.json");
const OPENSEARCH_TEMPLATE: &str =
    include_str!("../../../../conf/elasticsearch/audit-index-template.opensearch.json");
const ILM_POLICY: &str = include_str!("../../../../conf/elasticsearch/audit-ilm-policy.json");
const ISM_POLICY: &str = include_str!("../../../../conf/elasticsearch/audit-ism-policy.json");

/// Composable index templates (`_index_template`) came with 7.8.
const ES_COMPOSABLE_TEMPLATES: Version = Version::new(7, 8, 0);
/// Data streams came with Elasticsearch 7.9.
const ES_DATA_STREAMS: Version = Version::new(7, 9, 0);
/// ILM's `max_primary_shard_size` came with 7.13; before, `max_size`.
const ES_PRIMARY_SHARD_SIZE: Version = Version::new(7, 13, 0);
/// `flat_object` came with OpenSearch 2.7.
const OS_FLAT_OBJECT: Version = Version::new(2, 7, 0);

/// Where the output writes, as index patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    pub patterns: Vec<String>,
    pub data_stream: bool,
    /// `index` names a single index (no time field or hole): a lifecycle
    /// policy would delete all of it at once, so none is installed.
    pub single_index: bool,
}

impl Targets {
    /// The patterns of `config`: a data stream's own name; for `index`,
    /// the fixed text it starts with (made a valid name the way each
    /// event's index name is) followed by `*`.
    pub fn of(config: &ElasticsearchConfig) -> Result<Self, String> {
        if let Some(stream) = &config.data_stream {
            return Ok(Self {
                patterns: vec![stream.clone()],
                data_stream: true,
                single_index: false,
            });
        }
        let template = config.index_template()?;
        let mut prefix = template.static_prefix().to_owned();
        apply_index_rules(&mut prefix);
        if template.is_static() {
            return Ok(Self {
                patterns: vec![prefix],
                data_stream: false,
                single_index: true,
            });
        }
        if prefix.is_empty() {
            let text = config
                .index
                .as_ref()
                .map_or(super::super::config::DEFAULT_INDEX, |i| i.get_ref());
            return Err(format!(
                "`index = \"{text}\"` starts with a field, so no index pattern covers its \
                 indices alone: start it with fixed text, such as `kube-audit-{text}`"
            ));
        }
        Ok(Self {
            patterns: vec![format!("{prefix}*")],
            data_stream: false,
            single_index: false,
        })
    }
}

/// Parses an embedded file (tested to be JSON below).
fn shipped(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_default()
}

/// The index template for `server`, and a note when it had to leave
/// something out. `lifecycle` names the ILM policy to attach (Elasticsearch;
/// OpenSearch attaches ISM policies from the policy's `ism_template`).
pub(super) fn index_template(
    server: Server,
    targets: &Targets,
    lifecycle: Option<&str>,
) -> Result<(Value, Option<String>), String> {
    let mut note = None;
    let mut template = match server.flavor {
        Flavor::Elasticsearch => {
            if server.version < ES_COMPOSABLE_TEMPLATES {
                return Err(format!(
                    "{server} has no composable index templates (`_index_template`): \
                     Elasticsearch {ES_COMPOSABLE_TEMPLATES} or later is needed"
                ));
            }
            if targets.data_stream && server.version < ES_DATA_STREAMS {
                return Err(format!(
                    "{server} has no data streams: Elasticsearch {ES_DATA_STREAMS} or later is needed"
                ));
            }
            shipped(ELASTICSEARCH_TEMPLATE)
        }
        Flavor::OpenSearch if server.version < OS_FLAT_OBJECT => {
            note = Some(format!(
                "`annotations` and `user.extra` are stored but not searchable: \
                 `flat_object` needs OpenSearch {OS_FLAT_OBJECT}"
            ));
            let text = OPENSEARCH_TEMPLATE.replace(
                r#"{ "type": "flat_object" }"#,
                r#"{ "type": "object", "enabled": false }"#,
            );
            shipped(&text)
        }
        Flavor::OpenSearch => shipped(OPENSEARCH_TEMPLATE),
    };
    template["index_patterns"] = json!(targets.patterns);
    if targets.data_stream {
        template["data_stream"] = json!({});
    }
    if let Some(policy) = lifecycle {
        template["template"]["settings"]["index.lifecycle.name"] = json!(policy);
    }
    Ok((template, note))
}

/// The mapping type of `annotations` in a template: how the tests and the
/// report tell the variants apart.
pub fn annotations_type(template: &Value) -> &str {
    template["template"]["mappings"]["properties"]["annotations"]["type"]
        .as_str()
        .unwrap_or("object")
}

/// The ILM policy body: delete `days` after the index was created (after
/// its rollover, for a data stream's backing index, which rolls over daily
/// or at 50 GB a primary shard).
pub(super) fn ilm_policy(version: Version, days: u32, targets: &Targets) -> Value {
    let mut body = shipped(ILM_POLICY);
    let phases = &mut body["policy"]["phases"];
    phases["delete"]["min_age"] = json!(format!("{days}d"));
    if !targets.data_stream {
        // Dated indices are never written to once their day is over;
        // rollover needs a data stream or a write alias.
        if let Some(phases) = phases.as_object_mut() {
            phases.remove("hot");
        }
    } else if version < ES_PRIMARY_SHARD_SIZE {
        let rollover = &mut phases["hot"]["actions"]["rollover"];
        if let Some(rollover) = rollover.as_object_mut()
            && let Some(size) = rollover.remove("max_primary_shard_size")
        {
            rollover.insert("max_size".into(), size);
        }
    }
    body
}

/// The ISM policy body: the same retention, attached to new indices
/// matching the output's patterns through `ism_template`.
pub(super) fn ism_policy(days: u32, targets: &Targets) -> Value {
    let mut body = shipped(ISM_POLICY);
    let policy = &mut body["policy"];
    policy["description"] = json!(format!(
        "Kubernetes audit events from auditrail: deleted {days} days after their index was created"
    ));
    let states = &mut policy["states"];
    states[0]["transitions"][0]["conditions"]["min_index_age"] = json!(format!("{days}d"));
    if !targets.data_stream {
        states[0]["actions"] = json!([]);
    }
    policy["ism_template"][0]["index_patterns"] = json!(targets.patterns);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ElasticsearchConfig {
        toml::from_str(&format!("endpoints = [\"http://x:9200\"]\n{text}")).unwrap()
    }

    fn server(flavor: Flavor, version: &str) -> Server {
        Server {
            flavor,
            version: Version::parse(version).unwrap(),
        }
    }

    #[test]
    fn the_shipped_files_are_json() {
        for text in [
            ELASTICSEARCH_TEMPLATE,
            OPENSEARCH_TEMPLATE,
            ILM_POLICY,
            ISM_POLICY,
        ] {
            assert!(serde_json::from_str::<Value>(text).is_ok());
        }
    }

    #[test]
    fn patterns_follow_index_or_data_stream() {
        let dated = Targets::of(&config("")).unwrap();
        assert_eq!(dated.patterns, ["kube-audit-*"]);
        assert!(!dated.data_stream && !dated.single_index);
        let holes = Targets::of(&config(r#"index = "Audit Logs-${tag}-%Y""#)).unwrap();
        assert_eq!(holes.patterns, ["audit_logs-*"]);
        let single = Targets::of(&config(r#"index = "audit""#)).unwrap();
        assert_eq!(single.patterns, ["audit"]);
        assert!(single.single_index);
        let stream = Targets::of(&config(r#"data_stream = "logs-k8s.audit-default""#)).unwrap();
        assert_eq!(stream.patterns, ["logs-k8s.audit-default"]);
        assert!(stream.data_stream);
        let error = Targets::of(&config(r#"index = "%Y-audit""#)).unwrap_err();
        assert!(error.contains("starts with a field"), "{error}");
    }

    #[test]
    fn the_template_suits_the_flavor_and_version() {
        let targets = Targets::of(&config("")).unwrap();
        let (es, note) =
            index_template(server(Flavor::Elasticsearch, "8.19.0"), &targets, None).unwrap();
        assert_eq!(annotations_type(&es), "flattened");
        assert_eq!(es["index_patterns"], json!(["kube-audit-*"]));
        assert!(es.get("data_stream").is_none() && note.is_none());
        let (os, note) =
            index_template(server(Flavor::OpenSearch, "2.19.6"), &targets, None).unwrap();
        assert_eq!(annotations_type(&os), "flat_object");
        assert!(note.is_none());
        let (old, note) =
            index_template(server(Flavor::OpenSearch, "1.3.20"), &targets, None).unwrap();
        assert_eq!(annotations_type(&old), "object");
        assert_eq!(
            old["template"]["mappings"]["properties"]["user"]["properties"]["extra"],
            json!({"type": "object", "enabled": false})
        );
        assert!(note.unwrap().contains("OpenSearch 2.7.0"));
        assert!(index_template(server(Flavor::Elasticsearch, "7.7.1"), &targets, None).is_err());
    }

    #[test]
    fn data_streams_and_ilm_policies_go_into_the_template() {
        let targets = Targets::of(&config(r#"data_stream = "logs-a-b""#)).unwrap();
        let (es, _) = index_template(
            server(Flavor::Elasticsearch, "8.19.0"),
            &targets,
            Some("auditrail-es"),
        )
        .unwrap();
        assert_eq!(es["data_stream"], json!({}));
        assert_eq!(es["index_patterns"], json!(["logs-a-b"]));
        assert_eq!(
            es["template"]["settings"]["index.lifecycle.name"],
            "auditrail-es"
        );
        assert!(index_template(server(Flavor::Elasticsearch, "7.8.1"), &targets, None).is_err());
    }

    #[test]
    fn policies_delete_after_the_retention_and_roll_over_data_streams_only() {
        let dated = Targets::of(&config("")).unwrap();
        let stream = Targets::of(&config(r#"data_stream = "logs-a-b""#)).unwrap();
        let ilm = ilm_policy(Version::new(8, 19, 0), 7, &dated);
        assert_eq!(
            ilm,
            json!({"policy": {"phases": {"delete": {"min_age": "7d", "actions": {"delete": {}}}}}})
        );
        let ilm = ilm_policy(Version::new(8, 19, 0), 30, &stream);
        assert_eq!(
            ilm["policy"]["phases"]["hot"]["actions"]["rollover"],
            json!({"max_age": "1d", "max_primary_shard_size": "50gb"})
        );
        let ilm = ilm_policy(Version::new(7, 10, 2), 30, &stream);
        assert_eq!(
            ilm["policy"]["phases"]["hot"]["actions"]["rollover"],
            json!({"max_age": "1d", "max_size": "50gb"})
        );
        let ism = ism_policy(7, &dated);
        let policy = &ism["policy"];
        assert_eq!(policy["states"][0]["actions"], json!([]));
        assert_eq!(
            policy["states"][0]["transitions"][0]["conditions"]["min_index_age"],
            "7d"
        );
        assert_eq!(
            policy["ism_template"][0]["index_patterns"],
            json!(["kube-audit-*"])
        );
        let ism = ism_policy(30, &stream);
        assert_eq!(
            ism["policy"]["states"][0]["actions"][0]["rollover"]["min_index_age"],
            "1d"
        );
        assert_eq!(
            ism["policy"]["ism_template"][0]["index_patterns"],
            json!(["logs-a-b"])
        );
    }
}
