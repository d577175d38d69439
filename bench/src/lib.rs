//! Benchmarks of wasmbot; see `benches/` and `run.sh`.
