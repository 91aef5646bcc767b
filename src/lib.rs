//! auditrail: a log-shipping agent for Kubernetes audit events.

pub mod dsl;
pub mod event;
