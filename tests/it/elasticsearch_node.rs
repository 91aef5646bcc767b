//! The `elasticsearch` output against a real Elasticsearch 8.19 node
//! (`tests/servers/elasticsearch`): the scenarios of `search_scenarios.rs`.
//! Maven Central publishes the server and its Netty4 module but not its
//! ingest-common module, so no ingest pipeline is tested here.

use crate::search_scenarios::scenario_tests;
use crate::servers::Product;

const P: Product = Product::Elasticsearch;

scenario_tests!(P);
