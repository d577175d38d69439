//! Paths of the guest components built by `build.rs` for the end-to-end tests.
include!(concat!(env!("OUT_DIR"), "/components.rs"));
