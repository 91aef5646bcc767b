//! The `elasticsearch` output against a real Elasticsearch 8.19 node
//! (`tests/servers/elasticsearch`): the scenarios of `search_scenarios.rs`.
//! Maven Central publishes the server and its Netty4 module but not its
//! ingest-common module, so no ingest pipeline is tested here.

use crate::search_scenarios as scenarios;
use crate::servers::Product;

const P: Product = Product::Elasticsearch;

#[test]
fn real_events_are_searchable_and_a_replay_adds_no_duplicates() {
    scenarios::real_events_are_searchable_and_a_replay_adds_no_duplicates(P);
}

#[test]
fn daily_indices_follow_the_events_stage_timestamp() {
    scenarios::daily_indices_follow_the_events_stage_timestamp(P);
}

#[test]
fn a_data_stream_takes_every_event_once() {
    scenarios::a_data_stream_takes_every_event_once(P);
}

#[test]
fn real_mapping_errors_are_dead_lettered_with_the_servers_reason() {
    scenarios::real_mapping_errors_are_dead_lettered_with_the_servers_reason(P);
}

#[test]
fn the_shipped_template_takes_every_real_body() {
    scenarios::the_shipped_template_takes_every_real_body(P);
}

#[test]
fn blocked_indices_hold_events_until_the_block_is_lifted() {
    scenarios::blocked_indices_hold_events_until_the_block_is_lifted(P);
}

#[test]
fn write_queue_rejections_are_retried_until_every_event_is_in() {
    scenarios::write_queue_rejections_are_retried_until_every_event_is_in(P);
}

#[test]
fn a_node_restart_mid_run_loses_nothing() {
    scenarios::a_node_restart_mid_run_loses_nothing(P);
}
