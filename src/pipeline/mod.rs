//! Wiring: tag patterns, the router, the routing graph, and the topology that
//! starts sources, router and outputs and stops them in order.

mod data_dir;
mod graph;
mod router;
mod tag_pattern;
mod topology;

pub use data_dir::{DataDirError, DataDirLock};
pub use graph::RoutingGraph;
pub use router::{MAX_HOPS, RoutedFilter, RoutedOutput, Router};
pub use tag_pattern::{PatternError, TagPattern};
pub use topology::{Pipeline, RunError, run};
