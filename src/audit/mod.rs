//! Kubernetes API auditing: `audit.k8s.io/v1` types, audit policies, request-info
//! resolution, and turning raw access records (JSON or legacy `AUDIT:` lines) into the
//! Events kube-apiserver would have emitted.

pub mod access_record;
mod emit;
pub mod legacy;
pub mod policy;
pub mod request_info;
mod selector;
pub mod types;

#[cfg(test)]
mod tests;

pub use access_record::{AccessRecord, AccessRecordError, RecordUser};
pub use emit::Audited;
pub(crate) use emit::strip_managed_fields;
pub use legacy::{LegacyError, LegacyJoiner, LegacyLine};
pub use policy::{CompiledPolicy, PolicyDecision, PolicyError, RequestAttributes, UserAttributes};
pub use request_info::{RequestInfo, RequestInfoError};
pub use types::{
    Event, EventList, GroupResources, Level, ObjectMeta, ObjectReference, Policy, PolicyRule,
    Stage, StageSet, Status, UserInfo,
};
