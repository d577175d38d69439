//! `wasmbot build [NAME…]`: builds the plugin sources in `plugins/*/` into
//! `plugins/NAME.wasm`, against the plugin's own `wit/`, else the repo's or
//! the one built into the binary. Each language's own tool does the work.
//! The Python, JavaScript, C and Go tools are installed by wasmbot itself,
//! pinned, into its cache folder the first time they are needed
//! (componentize-py, Zig and Go into private venvs, componentize-js into a
//! private npm prefix; C and Go bindings and componentizing are libraries
//! inside wasmbot: [`c`], [`go`]); what it cannot install (python3, node,
//! the Rust target) is reported with the command that installs it. The result is
//! written atomically (temp file + rename), so a running bot picks it up by
//! hot reload and never sees half a component.

use std::path::{Path, PathBuf};
use std::process::Command;

mod c;
mod go;
pub use c::ZIG;
pub use go::GO;

/// The componentize-py wasmbot installs and builds Python plugins with.
pub const COMPONENTIZE_PY: Tool = Tool {
    name: "componentize-py",
    version: "0.25.1",
    package: "componentize-py==0.25.1",
    executable: "bin/componentize-py",
    probe: &["--version"],
};

/// The componentize-js wasmbot installs and builds JavaScript plugins with.
pub const COMPONENTIZE_JS: Tool = Tool {
    name: "componentize-js",
    version: "0.23.0",
    package: "@bytecodealliance/componentize-js@0.23.0",
    executable: "node_modules/.bin/componentize-js",
    probe: &["--version"],
};

/// A build tool wasmbot installs for itself, at one version.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
    /// What the package manager is asked for.
    pub package: &'static str,
    /// Where the installed executable is, in the tool's folder.
    pub executable: &'static str,
    /// Arguments that make the executable print `version`: run before an
    /// install is trusted, once per process.
    pub probe: &'static [&'static str],
}

/// What went wrong building one plugin.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "no plugin source in {0}: expected Cargo.toml (Rust), app.py (Python), plugin.js \
         (JavaScript), plugin.c (C) or plugin.go (Go)"
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
/// `target/wasm-guests` in `root` (the repo, next to its `wit/`: shared
/// with the build scripts' guest builds, so dependencies compile once; or
/// the folder that holds `plugins/`).
pub fn default_target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-guests")
}

/// The WIT a plugin is built against: its own `wit/` (every `wasmbot new`
/// plugin has one: the contract it was written against) if it has one,
/// else `fallback`.
pub fn wit_for(source: &Path, fallback: &Path) -> PathBuf {
    let own = source.join("wit");
    if own.join("wasmbot.wit").is_file() {
        own
    } else {
        fallback.to_owned()
    }
}

/// Builds the plugin in `source` into `plugins_dir/NAME.wasm` (NAME: the
/// folder's name) against its own `wit/`, else `wit`, compiling Rust in
/// `target_dir`; returns the path of the component.
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
    let wit = &wit_for(source, wit);
    let temp = plugins_dir.join(format!(".{name}.wasm.tmp"));
    if source.join("Cargo.toml").is_file() {
        build_rust(source, target_dir, &temp)?;
    } else if source.join("app.py").is_file() {
        build_python(source, wit, &temp)?;
    } else if source.join("plugin.js").is_file() {
        build_js(source, wit, &temp)?;
    } else if source.join("plugin.c").is_file() {
        c::build(source, wit, &temp)?;
    } else if source.join("plugin.go").is_file() {
        go::build(source, wit, &temp)?;
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

/// A tool from PyPI in its private venv, installed first if need be: its
/// executable, and the tools folder (for its caches).
fn from_pypi(tool: Tool) -> Result<(PathBuf, PathBuf), BuildError> {
    let python = require("python3", PYTHON)?;
    let tools = tools_dir()?;
    let exe = installed(tool, &tools, &python, install_python)?;
    Ok((exe, tools))
}

fn build_python(source: &Path, wit: &Path, out: &Path) -> Result<(), BuildError> {
    let (tool, _) = from_pypi(COMPONENTIZE_PY)?;
    let mut cmd = Command::new(tool);
    cmd.current_dir(source)
        .arg("-d")
        .arg(std::path::absolute(wit).map_err(|e| BuildError::Io(e.to_string()))?)
        .args(["-w", "behaviour"]);
    // Two interfaces are named `types` (ours and wasi:http's): keep ours
    // `types` and call the other `http_types`, whatever their versions.
    for (file, interface, module) in [
        ("wasmbot.wit", "wasmbot:plugin/types", "types"),
        ("deps/http.wit", "wasi:http/types", "http_types"),
    ] {
        if let Some(version) = package_version(&wit.join(file)) {
            cmd.arg("--import-interface-name")
                .arg(format!("{interface}@{version}={module}"));
        }
    }
    cmd.args(["componentize", "app", "-o"])
        .arg(std::path::absolute(out).map_err(|e| BuildError::Io(e.to_string()))?);
    run(cmd, "componentize-py")
}

/// The `behaviour` world of the contract in `wit` (with its `deps/`).
fn world_of(wit: &Path) -> Result<(wit_parser::Resolve, wit_parser::WorldId), BuildError> {
    let mut resolve = wit_parser::Resolve::default();
    let fail =
        |e: anyhow::Error| BuildError::Io(format!("the contract in {}: {e:#}", wit.display()));
    let (package, _) = resolve.push_path(wit).map_err(fail)?;
    let world = resolve
        .select_world(&[package], Some("behaviour"))
        .map_err(fail)?;
    Ok((resolve, world))
}

/// The version in the `package ns:name@x.y.z;` line of a WIT file.
fn package_version(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("package "))
        .and_then(|package| package.trim_end_matches(';').split_once('@'))
        .map(|(_, version)| version.trim().to_owned())
}

fn build_js(source: &Path, wit: &Path, out: &Path) -> Result<(), BuildError> {
    let node = require("node", NODE)?;
    require("npm", NODE)?;
    // Another node, or another lock, is another install.
    let lock: String = <sha2::Sha256 as sha2::Digest>::digest(JS_LOCK.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let runtime = format!("{} (lock {lock})", node.trim());
    let tool = installed(COMPONENTIZE_JS, &tools_dir()?, &runtime, install_js)?;
    let absolute = |p: &Path| std::path::absolute(p).map_err(|e| BuildError::Io(e.to_string()));
    let mut cmd = Command::new(tool);
    cmd.current_dir(source)
        .arg("plugin.js")
        .arg("--wit")
        .arg(absolute(wit)?)
        .args(["--world-name", "behaviour"])
        // fetch() over wasi:http stays; a plugin serves no HTTP requests.
        .args(["--disable", "fetch-event", "-o"])
        .arg(absolute(out)?);
    run(cmd, "componentize-js")
}

/// Where wasmbot installs its build tools: `tools/` in its cache folder
/// (`$XDG_CACHE_HOME/wasmbot`, else `~/.cache/wasmbot`).
pub fn tools_dir() -> Result<PathBuf, BuildError> {
    let env = std::env::vars().collect();
    let cache = crate::config::default_cache_dir(&env).ok_or_else(|| {
        BuildError::Io(
            "no cache folder to install build tools in: set XDG_CACHE_HOME or HOME".into(),
        )
    })?;
    // Whoever may write to the cache folder may swap `tools/` (which
    // `installed` checks in turn).
    crate::runtime::private_cache_dir(&cache).map_err(|why| {
        BuildError::Io(format!(
            "not installing build tools in {}: {why}",
            cache.display()
        ))
    })?;
    Ok(cache.join("tools"))
}

/// The executable of `tool` in `tools`, installed there first by
/// `install(folder)` if it is not yet, or was installed for another
/// `runtime` (the `python3`/`node` it runs on: a venv does not survive a
/// Python upgrade), or no longer runs (its probe fails: files of it were
/// deleted): once, under a lock (builds running at the same time wait for
/// one install), and all or nothing (a marker file is written last; an
/// install cut short is started again).
pub fn installed(
    tool: Tool,
    tools: &Path,
    runtime: &str,
    install: impl FnOnce(Tool, &Path) -> Result<(), BuildError>,
) -> Result<PathBuf, BuildError> {
    let folder = tools.join(format!("{}-{}", tool.name, tool.version));
    let exe = folder.join(tool.executable);
    let done = folder.join(".installed");
    let marker = format!("{}\n{}\n", tool.package, runtime.trim());
    let ready = || exe.is_file() && std::fs::read_to_string(&done).is_ok_and(|m| m == marker);
    let io = |what: &str, path: &Path, e: std::io::Error| {
        BuildError::Io(format!("cannot {what} {}: {e}", path.display()))
    };
    // Whoever can write here can make wasmbot run their programs.
    crate::runtime::private_cache_dir(tools).map_err(|why| {
        BuildError::Io(format!(
            "not using the tools folder {}: {why} (or remove it: wasmbot creates it anew)",
            tools.display()
        ))
    })?;
    if ready() {
        match runs(tool, &exe) {
            Ok(()) => return Ok(exe),
            Err(why) => eprintln!(
                "wasmbot: {} {} in {} does not run ({why}); installing it again",
                tool.name,
                tool.version,
                folder.display()
            ),
        }
    }
    let lock_path = tools.join(format!("{}-{}.lock", tool.name, tool.version));
    let lock = std::fs::File::create(&lock_path).map_err(|e| io("create", &lock_path, e))?;
    if let Err(std::fs::TryLockError::WouldBlock) = lock.try_lock() {
        eprintln!(
            "wasmbot: waiting for another build that is installing {} {}",
            tool.name, tool.version
        );
    }
    lock.lock().map_err(|e| io("lock", &lock_path, e))?;
    if ready() && runs(tool, &exe).is_ok() {
        return Ok(exe); // installed (or repaired) while we waited
    }
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(|e| io("remove", &folder, e))?;
    }
    eprintln!(
        "wasmbot: installing {} {} into {} (once; later builds reuse it)",
        tool.name,
        tool.version,
        folder.display()
    );
    let installed = install(tool, &folder).and_then(|()| {
        if !exe.is_file() {
            return Err(BuildError::Io(format!(
                "installing {} left no {}",
                tool.name,
                exe.display()
            )));
        }
        runs(tool, &exe).map_err(|why| {
            BuildError::Io(format!(
                "{} {} was installed but does not run: {why}",
                tool.name, tool.version
            ))
        })
    });
    if let Err(e) = installed {
        let _ = std::fs::remove_dir_all(&folder);
        return Err(e);
    }
    std::fs::write(&done, marker).map_err(|e| io("write", &done, e))?;
    Ok(exe)
}

/// Whether the installed `exe` runs and names the tool's version: once
/// per process and version of the file (its, or its link's, modification
/// time).
fn runs(tool: Tool, exe: &Path) -> Result<(), String> {
    use std::sync::Mutex;
    static WORKED: Mutex<Vec<(PathBuf, std::time::SystemTime)>> = Mutex::new(Vec::new());
    let stamp = std::fs::symlink_metadata(exe)
        .and_then(|m| m.modified())
        .map_err(|e| e.to_string())?;
    let key = (exe.to_owned(), stamp);
    let worked = |w: &Vec<_>| w.contains(&key);
    if worked(&WORKED.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(());
    }
    let out = Command::new(exe)
        .args(tool.probe)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = text.trim().lines().last().unwrap_or("no output").to_owned();
    if !out.status.success() {
        return Err(format!("{}: {last}", out.status));
    }
    if !text.contains(tool.version) {
        return Err(format!("it says {last:?}, not {}", tool.version));
    }
    let mut w = WORKED.lock().unwrap_or_else(|e| e.into_inner());
    if !worked(&w) {
        w.push(key);
    }
    Ok(())
}

/// A private venv with the tool from PyPI (wheels only: nothing is
/// compiled or run from a source package).
fn install_python(tool: Tool, folder: &Path) -> Result<(), BuildError> {
    let tools = folder.parent().unwrap_or(folder);
    let mut venv = Command::new("python3");
    // -I: no PYTHONPATH, user site or current folder on the way.
    venv.args(["-I", "-m", "venv"])
        .arg(folder)
        .current_dir(tools);
    run(
        venv,
        "python3 -m venv (Debian/Ubuntu need: apt-get install python3-venv)",
    )?;
    let mut pip = Command::new(folder.join("bin/python"));
    pip.args([
        "-I",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--only-binary=:all:",
        tool.package,
    ])
    .current_dir(tools);
    run(pip, &format!("pip install {}", tool.package))
}

/// The npm project componentize-js is installed from: the tool and every
/// package under it at the versions and hashes this wasmbot was tested
/// with (`host/tools/componentize-js/`; regenerate the lock with
/// `npm install --package-lock-only` there when the version moves).
const JS_PACKAGE: &str = include_str!("../../tools/componentize-js/package.json");
const JS_LOCK: &str = include_str!("../../tools/componentize-js/package-lock.json");

/// A private npm prefix with the tool and its locked dependencies
/// (`npm ci`: exactly the lock, integrity hashes checked).
fn install_js(tool: Tool, folder: &Path) -> Result<(), BuildError> {
    let tools = folder.parent().unwrap_or(folder);
    for (name, text) in [("package.json", JS_PACKAGE), ("package-lock.json", JS_LOCK)] {
        let path = folder.join(name);
        std::fs::create_dir_all(folder)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| BuildError::Io(format!("cannot write {}: {e}", path.display())))?;
    }
    let mut npm = Command::new("npm");
    npm.arg("ci")
        .arg("--prefix")
        .arg(folder)
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(tools);
    run(npm, &format!("npm ci ({})", tool.package))
}

/// What Python plugins need of the system.
const PYTHON: &str = "install Python 3 (Debian/Ubuntu: apt-get install python3 python3-venv)";
/// What JavaScript plugins need of the system.
const NODE: &str =
    "install Node.js 18 or later with npm (Debian/Ubuntu: apt-get install nodejs npm)";

/// What `program --version` prints, or an error that says how to
/// install it.
fn require(program: &str, install: &str) -> Result<String, BuildError> {
    run_output(program, &["--version"]).ok_or_else(|| BuildError::Missing {
        tool: program.into(),
        install: install.into(),
    })
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
    fn reads_the_package_version_of_the_contract_and_of_wasi_http() {
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        assert_eq!(
            package_version(&wit.join("wasmbot.wit")).as_deref(),
            Some(crate::runtime::WIT_VERSION)
        );
        let http = package_version(&wit.join("deps/http.wit")).unwrap();
        assert!(http.starts_with("0.2."), "{http}");
        assert_eq!(package_version(&wit.join("absent.wit")), None);
    }

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
        let built = build(&plugins.join("a"), &wit, &default_target_dir(dir.path()));
        assert!(matches!(built, Err(BuildError::UnknownLanguage(_))));
    }

    fn fake_tool(name: &'static str) -> Tool {
        Tool {
            name,
            version: "1.0",
            package: "fake==1.0",
            executable: "bin/t",
            probe: &["-c", "echo fake 1.0"],
        }
    }

    /// Puts `program` where the tool's executable goes (a link, so no
    /// file this process writes is ever executed: "text file busy").
    fn link_exe(tool: Tool, folder: &Path, program: &str) {
        let exe = folder.join(tool.executable);
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&exe);
        std::os::unix::fs::symlink(program, exe).unwrap();
    }

    /// A stand-in installer: counts its runs, writes the executable.
    fn fake_install(
        runs: &std::sync::atomic::AtomicUsize,
    ) -> impl Fn(Tool, &Path) -> Result<(), BuildError> + '_ {
        move |tool, folder| {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(50));
            link_exe(tool, folder, "/bin/sh");
            Ok(())
        }
    }

    #[test]
    fn a_tool_is_installed_once_even_by_builds_running_at_the_same_time() {
        let tools = tempfile::tempdir().unwrap();
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let exes: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| installed(fake_tool("t"), tools.path(), "rt 1", fake_install(&runs)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(exes.iter().all(|e| e == &tools.path().join("t-1.0/bin/t")));
        installed(fake_tool("t"), tools.path(), "rt 1", fake_install(&runs)).unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Another python3/node under it (a venv does not survive that),
        // or its executable gone: installed again.
        installed(fake_tool("t"), tools.path(), "rt 2", fake_install(&runs)).unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
        std::fs::remove_file(&exes[0]).unwrap();
        installed(fake_tool("t"), tools.path(), "rt 2", fake_install(&runs)).unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert!(exes[0].is_file());
    }

    #[test]
    fn a_failed_or_interrupted_install_is_started_again() {
        let tools = tempfile::tempdir().unwrap();
        let failed = installed(fake_tool("t"), tools.path(), "rt 1", |_, folder: &Path| {
            std::fs::create_dir_all(folder.join("bin")).unwrap();
            Err(BuildError::Failed {
                tool: "pip".into(),
                status: "exit status: 1".into(),
            })
        });
        assert!(matches!(failed, Err(BuildError::Failed { .. })));
        assert!(
            !tools.path().join("t-1.0").exists(),
            "a failed install is removed"
        );
        // An install killed half-way: the folder without its marker.
        std::fs::create_dir_all(tools.path().join("t-1.0/bin")).unwrap();
        std::fs::write(tools.path().join("t-1.0/bin/t"), "half").unwrap();
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let exe = installed(fake_tool("t"), tools.path(), "rt 1", fake_install(&runs)).unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(std::fs::read_link(exe).unwrap(), Path::new("/bin/sh"));
        // An installer that leaves no executable is an error, not a success.
        let empty = installed(fake_tool("u"), tools.path(), "rt 1", |_, _: &Path| Ok(()));
        assert!(matches!(empty, Err(BuildError::Io(m)) if m.contains("left no")));
        // Nor is one whose tool does not run, or runs another version.
        for (name, program, why) in [
            ("v", "/bin/false", "exit status: 1"),
            ("w", "/bin/true", "not 1.0"),
        ] {
            let broken = installed(fake_tool(name), tools.path(), "rt 1", |t, folder: &Path| {
                link_exe(t, folder, program);
                Ok(())
            });
            assert!(
                matches!(&broken, Err(BuildError::Io(m)) if m.contains("does not run") && m.contains(why)),
                "{broken:?}"
            );
            assert!(!tools.path().join(format!("{name}-1.0")).exists());
        }
    }

    /// What a clean-up of the cache folder once did to an installed Go:
    /// its files deleted under an intact marker. The next build finds
    /// that the tool no longer runs and installs it again.
    #[test]
    fn a_tool_that_no_longer_runs_is_installed_again() {
        let tools = tempfile::tempdir().unwrap();
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let exe = installed(fake_tool("t"), tools.path(), "rt 1", fake_install(&runs)).unwrap();
        link_exe(fake_tool("t"), &tools.path().join("t-1.0"), "/bin/false");
        let again = installed(fake_tool("t"), tools.path(), "rt 1", fake_install(&runs)).unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(again, exe);
        assert_eq!(std::fs::read_link(&exe).unwrap(), Path::new("/bin/sh"));
        installed(fake_tool("t"), tools.path(), "rt 1", fake_install(&runs)).unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[cfg(unix)]
    #[test]
    fn a_tools_folder_others_may_write_to_is_not_used() {
        use std::os::unix::fs::PermissionsExt as _;
        let cache = tempfile::tempdir().unwrap();
        let tools = cache.path().join("tools");
        std::fs::create_dir(&tools).unwrap();
        std::fs::set_permissions(&tools, std::fs::Permissions::from_mode(0o777)).unwrap();
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let e = installed(fake_tool("t"), &tools, "rt 1", fake_install(&runs)).unwrap_err();
        assert!(e.to_string().contains("others may write"), "{e}");
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn the_npm_lock_pins_the_componentize_js_we_name() {
        let lock: serde_json::Value = serde_json::from_str(JS_LOCK).unwrap();
        let package: serde_json::Value = serde_json::from_str(JS_PACKAGE).unwrap();
        let name = "@bytecodealliance/componentize-js";
        assert_eq!(package["dependencies"][name], COMPONENTIZE_JS.version);
        let locked = &lock["packages"][format!("node_modules/{name}")];
        assert_eq!(locked["version"], COMPONENTIZE_JS.version);
        assert!(locked["integrity"].as_str().unwrap().starts_with("sha512-"));
        assert_eq!(
            COMPONENTIZE_JS.package,
            format!("{name}@{}", COMPONENTIZE_JS.version)
        );
    }

    #[test]
    fn a_missing_system_tool_is_named_with_its_package() {
        let e = require("wasmbot-no-such-program", "apt-get install it").unwrap_err();
        assert_eq!(
            e.to_string(),
            "wasmbot-no-such-program is not installed; apt-get install it"
        );
    }
}
