//! Data-driven tests: conformance vectors, fixture round trips, and the replay of a real
//! kube-apiserver capture. All data lives under `tests/data/`.
