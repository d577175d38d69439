//! Shared by the end-to-end tests (`e2e/`) and the measurements
//! (`examples/`): the paths of the guest components built by `build.rs`,
//! and the [`fixture`] that runs a bot against them.

include!(concat!(env!("OUT_DIR"), "/components.rs"));

pub mod fixture;
