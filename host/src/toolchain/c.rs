//! C plugins. The bindings come from wit-bindgen's C generator, a library
//! inside wasmbot (nothing to install); the compiler is `zig cc` for
//! `wasm32-wasi`, with its own wasi-libc (Zig from PyPI's `ziglang` wheel,
//! installed by wasmbot into its tools folder like componentize-py: no
//! system package, no download outside the registries); the component is
//! made by wit-component, with wasmtime's WASI preview1 adapter for libc's
//! I/O. The generated `gen/` folder is rewritten by every build.

use super::{BuildError, Tool, from_pypi, run, world_of};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Zig, for its C compiler (`python -m ziglang cc`). The executable is the
/// venv's Python, which runs the wheel's `zig`.
pub const ZIG: Tool = Tool {
    name: "zig",
    version: "0.17.1",
    package: "ziglang==0.17.1",
    executable: "bin/python",
    probe: &["-I", "-m", "ziglang", "version"],
};

/// Where the generated bindings go, in the plugin's folder.
pub const GENERATED: &str = "gen";

/// Builds the C plugin in `source` against `wit` into `out`.
pub(super) fn build(source: &Path, wit: &Path, out: &Path) -> Result<(), BuildError> {
    let (zig, tools) = from_pypi(ZIG)?;
    let (resolve, world) = world_of(wit)?;
    bindings(&resolve, world, &source.join(GENERATED))?;

    let scratch = tempfile::tempdir().map_err(|e| BuildError::Io(e.to_string()))?;
    let core = scratch.path().join("core.wasm");
    let mut cmd = Command::new(&zig);
    cmd.current_dir(source)
        .args(["-I", "-m", "ziglang", "cc", "--target=wasm32-wasi"])
        // A library the host calls into, not a program with a main.
        .args([
            "-mexec-model=reactor",
            "-O2",
            "-s",
            "-Wall",
            "-I",
            GENERATED,
        ])
        // A 1 MiB stack, as Rust's (Zig's 16 MiB would be most of a
        // plugin's memory, counted against the budget at every call).
        .arg("-Wl,-z,stack-size=1048576")
        // Zig's caches (its wasi-libc, built once) live with the tool.
        .env(
            "ZIG_GLOBAL_CACHE_DIR",
            tools.join(format!("zig-{}-cache", ZIG.version)),
        )
        .env("ZIG_LOCAL_CACHE_DIR", scratch.path().join("zig-cache"))
        .arg("-o")
        .arg(&core)
        .args(sources(source)?)
        .arg(Path::new(GENERATED).join("behaviour.c"))
        .arg(Path::new(GENERATED).join("behaviour_component_type.o"));
    run(cmd, "zig cc")?;
    let core = std::fs::read(&core).map_err(|e| BuildError::Io(format!("zig cc output: {e}")))?;
    componentize(&core, out)
}

/// The plugin's C files: every `*.c` in its folder but the native tests
/// (`test_*.c`).
fn sources(source: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let entries = std::fs::read_dir(source)
        .map_err(|e| BuildError::Io(format!("cannot read {}: {e}", source.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| PathBuf::from(e.file_name()))
        .filter(|name| {
            let name = name.to_string_lossy();
            name.ends_with(".c") && !name.starts_with("test_")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Writes wit-bindgen's C bindings of `world` into `dir`.
fn bindings(
    resolve: &wit_parser::Resolve,
    world: wit_parser::WorldId,
    dir: &Path,
) -> Result<(), BuildError> {
    let mut files = wit_bindgen_core::Files::default();
    // With the object file that carries the component type (linked in).
    let opts = wit_bindgen_c::Opts::default();
    opts.build()
        .generate(&mut resolve.clone(), world, &mut files)
        .map_err(|e| BuildError::Io(format!("generating C bindings: {e:#}")))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| BuildError::Io(format!("cannot create {}: {e}", dir.display())))?;
    for (name, text) in files.iter() {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| BuildError::Io(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

/// The component of a core module that carries its component type: WASI
/// preview1 (libc) adapted to the preview2 the host links.
pub(super) fn componentize(core: &[u8], out: &Path) -> Result<(), BuildError> {
    use wasi_preview1_component_adapter_provider as adapter;
    let fail = |e: anyhow::Error| BuildError::Io(format!("making the component: {e:#}"));
    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(core)
        .map_err(fail)?
        .adapter(
            adapter::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            adapter::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(fail)?
        .encode()
        .map_err(fail)?;
    std::fs::write(out, component)
        .map_err(|e| BuildError::Io(format!("cannot write {}: {e}", out.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_of_the_contract_declare_the_exports() {
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let (resolve, world) = world_of(&wit).unwrap();
        let dir = tempfile::tempdir().unwrap();
        bindings(&resolve, world, dir.path()).unwrap();
        let header = std::fs::read_to_string(dir.path().join("behaviour.h")).unwrap();
        assert!(
            header.contains("exports_wasmbot_plugin_handler_handle"),
            "{header:.500}"
        );
        assert!(dir.path().join("behaviour.c").is_file());
        assert!(dir.path().join("behaviour_component_type.o").is_file());
    }

    #[test]
    fn the_native_tests_are_not_compiled_in() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "plugin.c",
            "logic.c",
            "test_logic.c",
            "logic.h",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let found = sources(dir.path()).unwrap();
        assert_eq!(found, [PathBuf::from("logic.c"), PathBuf::from("plugin.c")]);
    }
}
