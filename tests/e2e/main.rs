//! End-to-end tests: the real server (router, registry, runtime) on a
//! loopback socket, loading real components compiled from this repo's
//! sources, talking to a local stub instead of the internet.

mod authoring;
mod faults;
mod later;
mod reload;
mod signatures;
mod state;
mod trust;
mod upstream;
mod wasi_http;
mod webhook;
