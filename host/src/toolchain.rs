//! `wasmbot build [NAME…]`: builds the plugin sources in `plugins/*/` into
//! `plugins/NAME.wasm`, always against the repo's WIT. Each language's own
//! tool does the work; a missing tool is reported with what to install. The
//! result is written atomically (temp file + rename), so a running bot
//! picks it up by hot reload and never sees half a component.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The componentize-py this repo is tested with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// The componentize-js this repo is tested with.
pub const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";

/// What went wrong building one plugin.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "no plugin source in {0}: expected Cargo.toml (Rust), app.py (Python) or plugin.js \
         (JavaScript)"
    )]
    UnknownLanguage(PathBuf),
    #[error("{tool} is not installed; {install}")]
    Missing { tool: String, install: String },
    #[error("{tool} failed ({status}); its output is above")]
    Failed { tool: String, status: String },
    #[error("{0}")]
    Io(String),
}

/// The plugin source folders under `plugins_dir` (or those named).
pub fn sources(plugins_dir: &Path, names: &[String]) -> Result<Vec<PathBuf>, BuildError> {
    if !names.is_empty() {
        return Ok(names.iter().map(|n| plugins_dir.join(n)).collect());
    }
    let entries = std::fs::read_dir(plugins_dir)
        .map_err(|e| BuildError::Io(format!("cannot read {}: {e}", plugins_dir.display())))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The `wit/` folder with the plugin contract: the nearest one above
/// `start` (the repo's).
pub fn find_wit(start: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start).ok()?;
    start
        .ancestors()
        .map(|dir| dir.join("wit"))
        .find(|wit| wit.join("wasmbot.wit").is_file())
}

/// Where Rust plugins are compiled: `$CARGO_TARGET_DIR/wasm-guests`, else
/// `target/wasm-guests` next to `wit/` — shared with the build scripts'
/// guest builds, so dependencies compile once.
pub fn default_target_dir(wit: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| wit.parent().unwrap_or(Path::new(".")).join("target"))
        .join("wasm-guests")
}

/// Builds the plugin in `source` into `plugins_dir/NAME.wasm` (NAME: the
/// folder's name) against `wit`, compiling Rust in `target_dir`; returns
/// the path of the component.
pub fn build(source: &Path, wit: &Path, target_dir: &Path) -> Result<PathBuf, BuildError> {
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| BuildError::Io(format!("{} has no name", source.display())))?;
    if !source.is_dir() {
        return Err(BuildError::Io(format!(
            "no plugin folder {}",
            source.display()
        )));
    }
    let plugins_dir = source.parent().unwrap_or(Path::new("."));
    let out = plugins_dir.join(format!("{name}.wasm"));
    let temp = plugins_dir.join(format!(".{name}.wasm.tmp"));
    if source.join("Cargo.toml").is_file() {
        build_rust(source, target_dir, &temp)?;
    } else if source.join("app.py").is_file() {
        build_python(source, wit, &temp)?;
    } else if source.join("plugin.js").is_file() {
        build_js(source, wit, &temp)?;
    } else {
        return Err(BuildError::UnknownLanguage(source.to_owned()));
    }
    std::fs::rename(&temp, &out)
        .map_err(|e| BuildError::Io(format!("cannot install {}: {e}", out.display())))?;
    Ok(out)
}

fn build_rust(source: &Path, target_dir: &Path, out: &Path) -> Result<(), BuildError> {
    let manifest = source.join("Cargo.toml");
    let toml: toml::Table = std::fs::read_to_string(&manifest)
        .map_err(|e| BuildError::Io(format!("cannot read {}: {e}", manifest.display())))?
        .parse()
        .map_err(|e| BuildError::Io(format!("{}: {e}", manifest.display())))?;
    let package = toml
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| BuildError::Io(format!("{}: no [package] name", manifest.display())))?;
    let sysroot =
        run_output("rustc", &["--print", "sysroot"]).ok_or_else(|| BuildError::Missing {
            tool: "Rust".into(),
            install: "install it with rustup (https://rustup.rs)".into(),
        })?;
    if !Path::new(sysroot.trim())
        .join("lib/rustlib/wasm32-wasip2")
        .is_dir()
    {
        return Err(BuildError::Missing {
            tool: "the wasm32-wasip2 target".into(),
            install: "run: rustup target add wasm32-wasip2".into(),
        });
    }
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
    ])
    .arg(&manifest)
    .arg("--target-dir")
    .arg(target_dir)
    // The plugin's own build, whatever the calling cargo set.
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .env_remove("RUSTC_WORKSPACE_WRAPPER")
    .env_remove("CARGO_TARGET_DIR");
    run(cmd, "cargo")?;
    let built = target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    std::fs::copy(&built, out)
        .map(drop)
        .map_err(|e| BuildError::Io(format!("cannot copy {}: {e}", built.display())))
}

fn build_python(source: &Path, wit: &Path, out: &Path) -> Result<(), BuildError> {
    if run_output("componentize-py", &["--version"]).is_none() {
        return Err(BuildError::Missing {
            tool: "componentize-py".into(),
            install: format!("run: pip install {COMPONENTIZE_PY}"),
        });
    }
    let mut cmd = Command::new("componentize-py");
    cmd.current_dir(source)
        .arg("-d")
        .arg(std::path::absolute(wit).map_err(|e| BuildError::Io(e.to_string()))?)
        .args(["-w", "behaviour", "componentize", "app", "-o"])
        .arg(std::path::absolute(out).map_err(|e| BuildError::Io(e.to_string()))?);
    run(cmd, "componentize-py")
}

fn build_js(source: &Path, wit: &Path, out: &Path) -> Result<(), BuildError> {
    if run_output("componentize-js", &["--version"]).is_none() {
        return Err(BuildError::Missing {
            tool: "componentize-js".into(),
            install: format!("run: npm install -g {COMPONENTIZE_JS}"),
        });
    }
    let absolute = |p: &Path| std::path::absolute(p).map_err(|e| BuildError::Io(e.to_string()));
    let mut cmd = Command::new("componentize-js");
    cmd.current_dir(source)
        .arg("plugin.js")
        .arg("--wit")
        .arg(absolute(wit)?)
        .args(["--world-name", "behaviour"])
        // The host gives plugins its own `http` interface, not wasi:http.
        .args(["--disable", "http", "fetch-event", "-o"])
        .arg(absolute(out)?);
    run(cmd, "componentize-js")
}

fn run(mut cmd: Command, tool: &str) -> Result<(), BuildError> {
    let status = cmd
        .status()
        .map_err(|e| BuildError::Io(format!("cannot run {tool}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Failed {
            tool: tool.to_owned(),
            status: status.to_string(),
        })
    }
}

fn run_output(tool: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(tool).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_repos_wit_and_the_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("wit")).unwrap();
        std::fs::write(dir.path().join("wit/wasmbot.wit"), "package x:y;").unwrap();
        let plugins = dir.path().join("plugins");
        for sub in ["b", "a", ".hidden"] {
            std::fs::create_dir_all(plugins.join(sub)).unwrap();
        }
        std::fs::write(plugins.join("a.wasm"), b"").unwrap();
        assert_eq!(find_wit(&plugins), Some(dir.path().join("wit")));
        let found = sources(&plugins, &[]).unwrap();
        assert_eq!(found, [plugins.join("a"), plugins.join("b")]);
        let wit = dir.path().join("wit");
        let built = build(&plugins.join("a"), &wit, &default_target_dir(&wit));
        assert!(matches!(built, Err(BuildError::UnknownLanguage(_))));
    }
}
