//! Tests of the DSL, one module per concern.
