//! Write a [wasmbot](https://github.com/) behaviour plugin in Rust.
//!
//! ```ignore
//! use wasmbot_plugin::{Message, Plugin, PluginInfo, Reply, Trigger};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn describe() -> PluginInfo {
//!         wasmbot_plugin::info("hello", env!("CARGO_PKG_VERSION"), "Answers ping with pong")
//!             .trigger(Trigger::Word("ping".into()))
//!     }
//!     fn handle(msg: Message) -> Result<Option<Reply>, String> {
//!         Ok(Some(Reply::text(wasmbot_plugin::config("reply").unwrap_or("pong".into()))))
//!     }
//! }
//!
//! wasmbot_plugin::export!(Hello);
//! ```
//!
//! The contract's types (`Message`, `Reply`, `PluginInfo`, `Trigger`, …)
//! come from the WIT (`wasmbot:plugin@0.2.0`) and are re-exported here,
//! with the host's imports ([`http`], [`log`](mod@log)). Everything but the
//! imports works natively too, so a plugin's `handle` can be unit-tested
//! with `cargo test`: [`testing`] builds messages and sets the settings
//! [`config`] returns there.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        // The contract. `wasmbot new` copies this crate next to the
        // plugin's own wit/ and points this at it.
        path: "../../wit",
        world: "behaviour",
        pub_export_macro: true,
        export_macro_name: "__export_behaviour",
        default_bindings_module: "wasmbot_plugin::bindings",
        // The world's wasi:http import too (a plugin uses it through a
        // client crate such as `wstd`, which brings its own bindings).
        generate_all,
    });
}

pub use bindings::wasmbot::plugin::http;
pub use bindings::wasmbot::plugin::log::Level;
pub use bindings::wasmbot::plugin::types::{Media, Message, PluginInfo, Reply, Setting, Trigger};

/// A behaviour: what the host calls. See the contract in `wit/wasmbot.wit`.
pub trait Plugin {
    /// Called once when the file is loaded: who the plugin is, its
    /// settings, and the messages it is called for.
    fn describe() -> PluginInfo;
    /// Called in a fresh instance for every message that matches a
    /// trigger: `Ok(Some(reply))` answers, `Ok(None)` stays silent,
    /// `Err(reason)` is logged by the host as a failure.
    fn handle(msg: Message) -> Result<Option<Reply>, String>;
}

impl<T: Plugin> bindings::exports::wasmbot::plugin::handler::Guest for T {
    fn describe() -> PluginInfo {
        T::describe()
    }
    fn handle(msg: Message) -> Result<Option<Reply>, String> {
        T::handle(msg)
    }
}

/// Exports `$plugin` (a type implementing [`Plugin`]) as the component's
/// `handler`. Does nothing outside wasm, so native tests build.
#[macro_export]
macro_rules! export {
    ($plugin:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_behaviour!($plugin with_types_in $crate::bindings);
    };
}

/// A [`PluginInfo`] with no settings and no triggers yet (a plugin must
/// declare at least one trigger: add them with [`PluginInfo::trigger`]).
pub fn info(name: &str, version: &str, description: &str) -> PluginInfo {
    PluginInfo {
        name: name.into(),
        version: version.into(),
        description: description.into(),
        priority: 100,
        settings: Vec::new(),
        triggers: Vec::new(),
    }
}

impl PluginInfo {
    /// Adds a trigger: the host calls `handle` for messages that match one.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.triggers.push(trigger);
        self
    }
    /// Adds a setting the operator may set (`WASMBOT_<ID>__<KEY>` or
    /// `[plugins.<id>]`). A default that is an `http(s)` URL asks for
    /// outbound HTTP to its host, which only the operator can grant.
    pub fn setting(mut self, key: &str, default: Option<&str>, description: &str) -> Self {
        self.settings.push(Setting {
            key: key.into(),
            default: default.map(Into::into),
            description: description.into(),
        });
        self
    }
    /// Order among plugins: lower answers first (default 100).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
}

impl Reply {
    /// A text answer.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply {
            text: Some(text.into()),
            media: Vec::new(),
        }
    }
    /// A picture (or other media): an absolute `http(s)` URL Twilio fetches.
    pub fn media(url: impl Into<String>) -> Reply {
        Reply {
            text: None,
            media: vec![url.into()],
        }
    }
}

/// The value of setting `key` (the operator's, else the default the plugin
/// declared). In native tests: what [`testing::set_config`] set.
pub fn config(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        bindings::wasmbot::plugin::config::get(key)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        testing::CONFIG.with(|c| c.borrow().get(key).cloned())
    }
}

/// Writes `message` to the host's log, tagged with the plugin's id. In
/// native tests: to stderr.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::wasmbot::plugin::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Helpers for native unit tests of a plugin (`cargo test`).
pub mod testing {
    use super::{Media, Message};
    use std::cell::RefCell;
    use std::collections::HashMap;

    thread_local! {
        pub(crate) static CONFIG: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
    }

    /// Sets what [`config`](super::config) returns for `key` on this thread.
    pub fn set_config(key: &str, value: &str) {
        CONFIG.with(|c| c.borrow_mut().insert(key.into(), value.into()));
    }

    /// A WhatsApp message saying `body`, as the host would pass it.
    pub fn message(body: &str) -> Message {
        let params = [
            ("Body", body),
            ("From", "whatsapp:+15550001111"),
            ("To", "whatsapp:+14155238886"),
            ("MessageSid", "SM00000000000000000000000000000000"),
            ("AccountSid", "AC00000000000000000000000000000000"),
            ("NumMedia", "0"),
        ];
        Message {
            body: body.into(),
            from: "whatsapp:+15550001111".into(),
            to: "whatsapp:+14155238886".into(),
            message_sid: "SM00000000000000000000000000000000".into(),
            account_sid: "AC00000000000000000000000000000000".into(),
            profile_name: None,
            wa_id: Some("15550001111".into()),
            media: Vec::<Media>::new(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Plugin for Echo {
        fn describe() -> PluginInfo {
            info("echo", "1.0.0", "Says it back")
                .trigger(Trigger::Everything)
                .setting("prefix", Some("you said: "), "what goes first")
        }
        fn handle(msg: Message) -> Result<Option<Reply>, String> {
            let prefix = config("prefix").unwrap_or_default();
            Ok(Some(Reply::text(format!("{prefix}{}", msg.body))))
        }
    }

    export!(Echo);

    #[test]
    fn a_plugin_is_tested_natively_with_its_settings() {
        testing::set_config("prefix", "> ");
        let reply = Echo::handle(testing::message("hi")).unwrap().unwrap();
        assert_eq!(reply.text.as_deref(), Some("> hi"));
        let info = Echo::describe();
        assert_eq!(info.triggers.len(), 1);
        assert_eq!(info.settings[0].key, "prefix");
    }
}
