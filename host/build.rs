//! Builds the bundled plugins (`plugins/quote`, `plugins/cat`) to wasm
//! components and installs them as `plugins/quote.wasm` and
//! `plugins/cat.wasm`, so that `cargo run --release` serves them at once.
//! A file is only rewritten when its content changed, and then atomically
//! (temp file + rename), so a running server never sees half a component.

use std::path::Path;
use wasmbot_build_support::{Guest, build, workspace_root};

const PLUGINS: &[(&str, Guest<'static>)] = &[
    (
        "quote",
        Guest {
            package: "wasmbot-plugin-quote",
            dir: "plugins/quote",
        },
    ),
    (
        "cat",
        Guest {
            package: "wasmbot-plugin-cat",
            dir: "plugins/cat",
        },
    ),
];

fn main() {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let root = workspace_root(Path::new(&manifest_dir));
    let guests: Vec<_> = PLUGINS.iter().map(|(_, guest)| *guest).collect();
    let built = build(&root, &guests);
    for ((name, _), component) in PLUGINS.iter().zip(built) {
        let installed = root.join("plugins").join(format!("{name}.wasm"));
        // Re-run when the installed copy is deleted or edited by hand.
        println!("cargo:rerun-if-changed={}", installed.display());
        let bytes = std::fs::read(&component).expect("read built component");
        if std::fs::read(&installed).ok().as_deref() == Some(&bytes[..]) {
            continue;
        }
        let temp = root.join("plugins").join(format!(".{name}.wasm.tmp"));
        std::fs::write(&temp, &bytes).expect("write plugin");
        std::fs::rename(&temp, &installed).expect("install plugin");
    }
}
