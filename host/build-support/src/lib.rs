//! Compiles guest crates of this workspace to WebAssembly components from a
//! build script, the way wasmtime's `test-programs/artifacts` does: a nested
//! `cargo build --target wasm32-wasip2 --release` into a target dir of its
//! own (so it never waits on the outer cargo's lock), with the outer build's
//! flags and wrappers removed.
//!
//! Used by `host/build.rs` (the real plugins, copied into `plugins/`) and by
//! `tests/build.rs` (those plus the test-only fixtures).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every guest is built for; `rustc` links a component directly.
pub const TARGET: &str = "wasm32-wasip2";

/// One guest crate: its cargo package name and its directory.
#[derive(Clone, Copy, Debug)]
pub struct Guest<'a> {
    pub package: &'a str,
    pub dir: &'a str,
}

/// The workspace root, from the calling build script's manifest dir.
pub fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|toml| toml.lines().any(|line| line.trim() == "[workspace]"))
        })
        .expect("wasmbot-build-support: no workspace Cargo.toml above the manifest dir")
        .to_path_buf()
}

/// Builds `guests` and returns the path of each component, in order.
///
/// Prints the `cargo:rerun-if-changed` lines that make the calling build
/// script run again when a guest's sources, the WIT or the lock file change.
pub fn build(root: &Path, guests: &[Guest<'_>]) -> Vec<PathBuf> {
    ensure_target();
    for path in ["wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    for guest in guests {
        let dir = root.join(guest.dir);
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
    }

    // A target dir shared by every guest build, next to the outer one.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-guests");

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for guest in guests {
        cmd.args(["--package", guest.package]);
    }
    // The outer build's flags, wrappers (clippy-driver, sccache) and lints
    // are for the host target; the guests get a plain build. The jobserver
    // (CARGO_MAKEFLAGS) is kept, so both builds share the machine's cores.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build the plugins: {e}"));
    if !status.success() {
        panic!(
            "building the wasm plugins failed ({status}); the cargo output above says why.\n\
             To see it alone: cargo build --release --target {TARGET} {}",
            guests
                .iter()
                .map(|g| format!("-p {}", g.package))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }

    let out = target_dir.join(TARGET).join("release");
    guests
        .iter()
        .map(|guest| {
            let path = out.join(format!("{}.wasm", guest.package.replace('-', "_")));
            assert!(path.is_file(), "{} was not produced", path.display());
            path
        })
        .collect()
}

/// Makes sure the `wasm32-wasip2` standard library is installed: installs
/// it with rustup when rustup is there, else stops with the command to run.
fn ensure_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = |sysroot: &Option<PathBuf>| {
        sysroot
            .as_ref()
            .is_some_and(|root| root.join("lib/rustlib").join(TARGET).join("lib").is_dir())
    };
    if installed(&sysroot) {
        return;
    }
    println!("cargo:warning=the {TARGET} target is missing; running `rustup target add {TARGET}`");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|status| status.success());
    if !added || !installed(&sysroot) {
        panic!(
            "\nerror: the `{TARGET}` Rust target is not installed, and wasmbot's plugins are \
             built for it.\n\nhelp: run `rustup target add {TARGET}` and build again\n"
        );
    }
}
