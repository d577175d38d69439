//! Builds every guest the end-to-end tests load — the real plugins and the
//! test-only fixtures in `tests/guests/` — and writes their paths as
//! constants (`QUOTE`, `CAT`, `TRAP`, …) into `components.rs`.

use std::path::{Path, PathBuf};
use wasmbot_build_support::{Guest, build, workspace_root};

const GUESTS: &[(&str, Guest<'static>)] = &[
    (
        "QUOTE",
        Guest {
            package: "wasmbot-plugin-quote",
            dir: "plugins/quote",
        },
    ),
    (
        "CAT",
        Guest {
            package: "wasmbot-plugin-cat",
            dir: "plugins/cat",
        },
    ),
    (
        "TRAP",
        Guest {
            package: "wasmbot-fixture-trap",
            dir: "tests/guests/trap",
        },
    ),
    (
        "SPIN",
        Guest {
            package: "wasmbot-fixture-spin",
            dir: "tests/guests/spin",
        },
    ),
    (
        "V2",
        Guest {
            package: "wasmbot-fixture-v2",
            dir: "tests/guests/v2",
        },
    ),
    (
        "HOSTILE",
        Guest {
            package: "wasmbot-fixture-hostile",
            dir: "tests/guests/hostile",
        },
    ),
    (
        "IMPOSTOR",
        Guest {
            package: "wasmbot-fixture-impostor",
            dir: "tests/guests/impostor",
        },
    ),
    (
        "GREEDY",
        Guest {
            package: "wasmbot-fixture-greedy",
            dir: "tests/guests/greedy",
        },
    ),
    (
        "JOKE",
        Guest {
            package: "wasmbot-plugin-joke",
            dir: "plugins/joke",
        },
    ),
    (
        "HOARDER",
        Guest {
            package: "wasmbot-fixture-hoarder",
            dir: "tests/guests/hoarder",
        },
    ),
    (
        "ASK",
        Guest {
            package: "wasmbot-plugin-ask",
            dir: "plugins/ask",
        },
    ),
    (
        "FETCHER",
        Guest {
            package: "wasmbot-fixture-fetcher",
            dir: "tests/guests/fetcher",
        },
    ),
];

fn main() {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let root = workspace_root(Path::new(&manifest_dir));
    let guests: Vec<Guest> = GUESTS.iter().map(|(_, g)| *g).collect();
    let built = build(&root, &guests);
    let mut code = String::new();
    for ((name, guest), path) in GUESTS.iter().zip(built) {
        code += &format!(
            "/// The component built from `{}`.\npub const {name}: &str = {:?};\n",
            guest.dir,
            path.display().to_string()
        );
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("components.rs"), code).expect("write components.rs");
}
