//! `wasmbot new --lang LANG NAME`: a new plugin in `plugins/NAME/`, made
//! from the templates in `host/templates/LANG/` (built into the binary).
//! It answers `ping` with `pong` and shows configuration, logging and
//! outbound HTTP. The plugin gets the contract it is written against in
//! its own `wit/` folder ([`WIT`], built into the binary), so it builds
//! anywhere: in this repo or in an empty folder with only the binary.

use std::path::{Path, PathBuf};

/// Languages a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
    Go,
}

/// The plugin contract this binary implements: `wit/wasmbot.wit`, built
/// in. `wasmbot new` puts it in every new plugin, `wasmbot wit` writes it
/// out, with [`WIT_DEPS`].
pub const WIT: &str = include_str!("../../wit/wasmbot.wit");

/// The WASI packages the contract's world refers to (`wasi:http` and what
/// it uses), as `wit/deps/` holds them.
pub const WIT_DEPS: &[Template] = &[
    ("deps/cli.wit", include_str!("../../wit/deps/cli.wit")),
    ("deps/clocks.wit", include_str!("../../wit/deps/clocks.wit")),
    (
        "deps/filesystem.wit",
        include_str!("../../wit/deps/filesystem.wit"),
    ),
    ("deps/http.wit", include_str!("../../wit/deps/http.wit")),
    ("deps/io.wit", include_str!("../../wit/deps/io.wit")),
    ("deps/random.wit", include_str!("../../wit/deps/random.wit")),
    (
        "deps/sockets.wit",
        include_str!("../../wit/deps/sockets.wit"),
    ),
];

/// Writes [`WIT`] into `dir` (created if needed) as `wasmbot.wit`, and
/// [`WIT_DEPS`] into `dir/deps/`; the path of `wasmbot.wit`.
pub fn write_wit(dir: &Path) -> Result<PathBuf, ScaffoldError> {
    for (file, text) in [("wasmbot.wit", WIT)].iter().chain(WIT_DEPS) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("a file in the wit folder"))
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| ScaffoldError::Write(path.clone(), e))?;
    }
    Ok(dir.join("wasmbot.wit"))
}

/// A template file: its path in the new plugin and its text.
pub type Template = (&'static str, &'static str);

const RUST: &[Template] = &[
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("README.md", include_str!("../templates/rust/README.md")),
    // The SDK (sdk/rust), until it is published: a plugin builds anywhere.
    (
        "wasmbot-plugin/Cargo.toml",
        include_str!("../../sdk/rust/Cargo.toml"),
    ),
    (
        "wasmbot-plugin/src/lib.rs",
        include_str!("../../sdk/rust/src/lib.rs"),
    ),
];

const PYTHON: &[Template] = &[
    ("app.py", include_str!("../templates/python/app.py")),
    ("logic.py", include_str!("../templates/python/logic.py")),
    (
        "test_logic.py",
        include_str!("../templates/python/test_logic.py"),
    ),
    (
        "wasmbot_http.py",
        include_str!("../templates/python/wasmbot_http.py"),
    ),
    ("README.md", include_str!("../templates/python/README.md")),
];

const JS: &[Template] = &[
    ("plugin.js", include_str!("../templates/js/plugin.js")),
    ("logic.js", include_str!("../templates/js/logic.js")),
    ("test.mjs", include_str!("../templates/js/test.mjs")),
    ("README.md", include_str!("../templates/js/README.md")),
];

const C: &[Template] = &[
    ("plugin.c", include_str!("../templates/c/plugin.c")),
    ("logic.c", include_str!("../templates/c/logic.c")),
    ("logic.h", include_str!("../templates/c/logic.h")),
    ("test_logic.c", include_str!("../templates/c/test_logic.c")),
    ("Makefile", include_str!("../templates/c/Makefile")),
    (".gitignore", include_str!("../templates/c/gitignore")),
    ("README.md", include_str!("../templates/c/README.md")),
];

const GO: &[Template] = &[
    ("plugin.go", include_str!("../templates/go/plugin.go")),
    (
        "logic/logic.go",
        include_str!("../templates/go/logic/logic.go"),
    ),
    (
        "logic/logic_test.go",
        include_str!("../templates/go/logic/logic_test.go"),
    ),
    ("go.mod", include_str!("../templates/go/go.mod")),
    ("README.md", include_str!("../templates/go/README.md")),
];

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "{0:?} is not a plugin name: use lowercase letters, digits and '-', starting with a letter"
    )]
    BadName(String),
    #[error("{0} already exists")]
    Exists(PathBuf),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// Creates `plugins_dir/name/` for `lang`; returns its path.
pub fn new(plugins_dir: &Path, lang: Lang, name: &str) -> Result<PathBuf, ScaffoldError> {
    // The name becomes the file name, so it must be a plugin id (and
    // start with a letter, as crate and module names must).
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && crate::policy::PluginId::parse(name).is_some();
    if !valid {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    let dir = plugins_dir.join(name);
    if dir.exists() || plugins_dir.join(format!("{name}.wasm")).exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let templates = match lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
        Lang::C => C,
        Lang::Go => GO,
    };
    let env_name = name.to_ascii_uppercase().replace('-', "_");
    for (file, text) in templates {
        let path = dir.join(file);
        let text = if file.starts_with("wasmbot-plugin/") {
            // The SDK's bindings read the contract from the plugin's wit/.
            text.replace(r#"path: "../../wit""#, r#"path: "../wit""#)
        } else {
            text.replace("{{name}}", name)
                .replace("{{env_name}}", &env_name)
        };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().expect("a file in the plugin folder"))?;
            std::fs::write(&path, text)
        };
        write().map_err(|e| ScaffoldError::Write(path.clone(), e))?;
    }
    write_wit(&dir.join("wit"))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_in_the_templates() {
        let dir = tempfile::tempdir().unwrap();
        let made = new(dir.path(), Lang::Rust, "echo-bot").unwrap();
        let lib = std::fs::read_to_string(made.join("src/lib.rs")).unwrap();
        assert!(lib.contains(r#"wasmbot_plugin::info("echo-bot","#));
        assert!(lib.contains("WASMBOT_ECHO_BOT__REPLY"));
        assert!(!lib.contains("{{"), "a placeholder was left");
        let toml = std::fs::read_to_string(made.join("Cargo.toml")).unwrap();
        assert!(toml.contains(r#"name = "echo-bot""#));
        let wit = std::fs::read_to_string(made.join("wit/wasmbot.wit")).unwrap();
        assert_eq!(wit, WIT);
        let http = std::fs::read_to_string(made.join("wit/deps/http.wit")).unwrap();
        assert!(http.starts_with("package wasi:http@"));
        let sdk = std::fs::read_to_string(made.join("wasmbot-plugin/src/lib.rs")).unwrap();
        assert!(sdk.contains(r#"path: "../wit""#) && !sdk.contains("../../wit"));

        let made = new(dir.path(), Lang::Python, "dice").unwrap();
        let app = std::fs::read_to_string(made.join("app.py")).unwrap();
        assert!(app.contains(r#"name="dice""#) && !app.contains("{{"));

        let made = new(dir.path(), Lang::C, "c-bot").unwrap();
        let c = std::fs::read_to_string(made.join("plugin.c")).unwrap();
        assert!(c.contains(r#""c-bot""#) && c.contains("WASMBOT_C_BOT__REPLY"));
        assert!(!c.contains("{{"));
        assert!(made.join("Makefile").is_file() && made.join(".gitignore").is_file());

        let made = new(dir.path(), Lang::Go, "go-bot").unwrap();
        let go = std::fs::read_to_string(made.join("plugin.go")).unwrap();
        assert!(go.contains(r#"Name:        "go-bot""#) && go.contains("WASMBOT_GO_BOT__REPLY"));
        assert!(!go.contains("{{") && made.join("logic/logic_test.go").is_file());

        let made = new(dir.path(), Lang::Js, "js-bot").unwrap();
        let js = std::fs::read_to_string(made.join("plugin.js")).unwrap();
        assert!(js.contains("name: 'js-bot'") && js.contains("WASMBOT_JS_BOT__REPLY"));
        assert!(!js.contains("{{"));
    }

    #[test]
    fn the_built_in_wit_is_the_contract_the_host_implements() {
        let package = format!(
            "package {}@{};",
            crate::runtime::WIT_PACKAGE,
            crate::runtime::WIT_VERSION
        );
        assert!(WIT.contains(&package), "{package}");
        // Every file of wit/deps is built in, as it is in the repo.
        let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/deps");
        let mut files: Vec<_> = std::fs::read_dir(&deps)
            .unwrap()
            .map(|e| format!("deps/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        files.sort();
        let built_in: Vec<_> = WIT_DEPS.iter().map(|(f, _)| f.to_string()).collect();
        assert_eq!(files, built_in);
        for (file, text) in WIT_DEPS {
            let on_disk = std::fs::read_to_string(deps.join("..").join(file)).unwrap();
            assert_eq!(&on_disk, text, "{file}");
        }
    }

    #[test]
    fn refuses_bad_names_and_existing_plugins() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "Echo", "1bot", "a b", "../up", "x_y", "a--b", "bot-"] {
            assert!(
                matches!(
                    new(dir.path(), Lang::Rust, bad),
                    Err(ScaffoldError::BadName(_))
                ),
                "{bad}"
            );
        }
        new(dir.path(), Lang::Rust, "twice").unwrap();
        assert!(matches!(
            new(dir.path(), Lang::Python, "twice"),
            Err(ScaffoldError::Exists(_))
        ));
    }
}
