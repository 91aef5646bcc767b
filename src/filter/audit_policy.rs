//! `type = "audit_policy"`: applies an audit Policy to audit `Event`s already in the
//! pipeline (re-filtering kube-apiserver's output at a lower level).
//!
//! ## What it does
//! Evaluates the policy for each event's request, as kube-apiserver would have:
//! attributes come from `requestURI` (so a `create`'s name, which the event only has
//! from the body, does not match `resourceNames`, exactly as upstream), the event's
//! `verb` and its authenticated `user`. Then:
//! - level `None`: the event is dropped (`reason="policy_none"`);
//! - a stage the policy omits: dropped (`reason="policy_omit_stage"`);
//! - `requestObject` is removed below `Request`, `responseObject` below
//!   `RequestResponse`, and `level` lowered to the policy's level (never raised: a
//!   Metadata event has no bodies to give, so it keeps saying Metadata);
//! - `omitManagedFields`: `metadata.managedFields` is removed from the bodies (from
//!   list items and Table rows too; never from patch documents).
//!
//! ```toml
//! [[filter]]
//! type = "audit_policy"
//! match = "audit.**"
//! policy = "/etc/kubernetes/audit-policy.yaml"
//! ```
//!
//! ## Guarantees
//! An event the policy does not change keeps its original bytes: only the few fields
//! the decision needs are read from its text. Records that are not audit events (no
//! `verb` or `stage`) pass unchanged and are counted as errors.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::{Filter, FilterOutput};
use crate::audit::request_info::split_uri;
use crate::audit::{
    CompiledPolicy, Level, PolicyDecision, RequestAttributes, RequestInfo, Stage, UserAttributes,
};
use crate::config::{Diagnostic, load_policy_key};
use crate::event::{Event, FieldPath, PathSegment, Record};
use crate::metrics::ComponentMetrics;

/// The raw `audit_policy` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPolicyConfig {
    /// The audit Policy file (`audit.k8s.io/v1`, YAML or JSON), loaded and
    /// validated with the config. Relative to the working directory. Required.
    pub policy: Spanned<PathBuf>,
}

/// A validated `audit_policy` filter.
#[derive(Debug, Clone)]
pub struct AuditPolicySpec {
    policy: Arc<CompiledPolicy>,
}

impl AuditPolicyConfig {
    pub fn validate(&self) -> Result<AuditPolicySpec, Diagnostic> {
        Ok(AuditPolicySpec {
            policy: load_policy_key(&self.policy)?,
        })
    }
}

impl AuditPolicySpec {
    pub fn build(&self, metrics: ComponentMetrics) -> AuditPolicy {
        AuditPolicy {
            policy: self.policy.clone(),
            policy_none: metrics.dropped("policy_none"),
            omitted_stage: metrics.dropped("policy_omit_stage"),
            paths: Paths::new(),
            warned_not_audit: false,
            metrics,
        }
    }
}

/// The fields read per event, split once.
struct Paths {
    verb: FieldPath,
    stage: FieldPath,
    level: FieldPath,
    user: FieldPath,
    object_ref: FieldPath,
    request_uri: FieldPath,
    request_object: FieldPath,
    response_object: FieldPath,
}

fn key(name: &str) -> FieldPath {
    FieldPath::new(vec![PathSegment::Key(name.into())])
}

impl Paths {
    fn new() -> Self {
        Self {
            verb: key("verb"),
            stage: key("stage"),
            level: key("level"),
            user: key("user"),
            object_ref: key("objectRef"),
            request_uri: key("requestURI"),
            request_object: key("requestObject"),
            response_object: key("responseObject"),
        }
    }
}

pub struct AuditPolicy {
    policy: Arc<CompiledPolicy>,
    policy_none: Counter,
    omitted_stage: Counter,
    paths: Paths,
    warned_not_audit: bool,
    metrics: ComponentMetrics,
}

impl Filter for AuditPolicy {
    fn apply(&mut self, mut event: Event, out: &mut FilterOutput) {
        let Some(facts) = EventFacts::read(&event.record, &self.paths) else {
            self.metrics.errors.inc();
            if !self.warned_not_audit {
                self.warned_not_audit = true;
                tracing::warn!(
                    component = %self.metrics.name,
                    "A record without `verb` or `stage` is not an audit event; passed it unchanged (further ones are only counted)."
                );
            }
            out.pass(event);
            return;
        };
        let decision = facts.decide(&self.policy);
        if decision.level == Level::None {
            self.policy_none.inc();
            out.discard(event);
            return;
        }
        if decision.omit_stages.contains(facts.stage) {
            self.omitted_stage.inc();
            out.discard(event);
            return;
        }
        apply_level(&mut event.record, &self.paths, &facts, decision);
        out.pass(event);
    }
}

/// What the decision needs, read without parsing the whole record.
struct EventFacts {
    verb: String,
    stage: Stage,
    level: Option<Level>,
    username: Option<String>,
    groups: Vec<String>,
    object_ref: Option<Value>,
    request_uri: String,
}

impl EventFacts {
    fn read(record: &Record, paths: &Paths) -> Option<Self> {
        let text = |path: &FieldPath| record.get(path).and_then(|v| v.as_str().map(str::to_owned));
        let verb = text(&paths.verb)?;
        let stage = Stage::from_name(&text(&paths.stage)?)?;
        let user = record.get(&paths.user).map(Cow::into_owned);
        let username = user
            .as_ref()
            .and_then(|u| u.get("username"))
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .map(str::to_owned);
        let groups = user
            .as_ref()
            .and_then(|u| u.get("groups"))
            .and_then(Value::as_array)
            .map(|groups| {
                groups
                    .iter()
                    .filter_map(|g| g.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            verb,
            stage,
            level: text(&paths.level).and_then(|l| Level::from_name(&l)),
            username,
            groups,
            object_ref: record.get(&paths.object_ref).map(Cow::into_owned),
            request_uri: text(&paths.request_uri).unwrap_or_default(),
        })
    }

    fn decide(&self, policy: &CompiledPolicy) -> PolicyDecision {
        let user = self.username.as_deref().map(|name| UserAttributes {
            name,
            groups: &self.groups,
        });
        // The URI gives what kube-apiserver's authorizer saw; the objectRef may
        // carry more (a create's name from its body), which the policy never saw.
        let method = crate::audit::legacy::method_for_verb(&self.verb);
        if let Ok(mut info) = RequestInfo::resolve(&method, &self.request_uri) {
            info.verb.clone_from(&self.verb);
            return policy.evaluate(&info.attributes(user));
        }
        let object = |key: &str| {
            self.object_ref
                .as_ref()
                .and_then(|o| o.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        policy.evaluate(&RequestAttributes {
            user,
            verb: &self.verb,
            is_resource_request: self.object_ref.is_some(),
            path: split_uri(&self.request_uri).0,
            namespace: object("namespace"),
            api_group: object("apiGroup"),
            api_version: object("apiVersion"),
            resource: object("resource"),
            subresource: object("subresource"),
            name: object("name"),
        })
    }
}

/// Strips what the level excludes and lowers `level`; touches the record only when
/// something changes, so other events keep their bytes.
fn apply_level(record: &mut Record, paths: &Paths, facts: &EventFacts, decision: PolicyDecision) {
    let level = facts
        .level
        .map_or(decision.level, |l| l.min(decision.level));
    if level < Level::Request {
        record.remove(&paths.request_object);
    }
    if level < Level::RequestResponse {
        record.remove(&paths.response_object);
    }
    if decision.omit_managed_fields {
        // Patch documents are logged as sent (spec §2.4).
        let bodies = if facts.verb == "patch" {
            vec![&paths.response_object]
        } else {
            vec![&paths.request_object, &paths.response_object]
        };
        for path in bodies {
            if let Some(body) = record.get(path) {
                let mut body = body.into_owned();
                if crate::audit::strip_managed_fields(&mut body) {
                    record.set(path, body);
                }
            }
        }
    }
    if facts.level != Some(level) {
        record.set(&paths.level, Value::from(level.as_str()));
    }
}

#[cfg(test)]
#[path = "audit_policy_tests.rs"]
mod tests;
