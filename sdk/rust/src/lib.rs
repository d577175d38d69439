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
//! with the host's imports ([`http`], [`log`](mod@log), [`state`],
//! [`later`]). Everything but the
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

/// The plugin's own key-value store, kept by the host between messages
/// (see `interface state` in the contract for its limits). Keys are the
/// plugin's alone. In native tests: an in-memory store per thread, with
/// the same rules, emptied by [`testing::clear_state`].
///
/// ```ignore
/// use wasmbot_plugin::state;
/// let visits = state::increment(&format!("visits:{}", msg.from), 1)?;
/// state::set_text("last-word", &msg.body, Some(Duration::from_secs(3600)))?;
/// ```
pub mod state {
    pub use crate::bindings::wasmbot::plugin::state::Error;
    use std::time::Duration;

    /// The value of `key`, if it is set.
    pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
        imp::get(key)
    }

    /// The value of `key` as text (invalid UTF-8 replaced), if it is set.
    pub fn get_text(key: &str) -> Result<Option<String>, Error> {
        Ok(get(key)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Sets `key` to `value`; with `ttl`, it expires that long from now.
    pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
        // A zero time to live reaches the host, which says `invalid`.
        imp::set(
            key,
            value,
            ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// Sets `key` to the text `value`.
    pub fn set_text(key: &str, value: &str, ttl: Option<Duration>) -> Result<(), Error> {
        set(key, value.as_bytes(), ttl)
    }

    /// Removes `key`; whether it was set.
    pub fn delete(key: &str) -> Result<bool, Error> {
        imp::delete(key)
    }

    /// Adds `delta` to the number at `key` (0 if unset), atomically; the sum.
    pub fn increment(key: &str, delta: i64) -> Result<i64, Error> {
        imp::increment(key, delta)
    }

    /// Every key of the plugin that starts with `prefix`, in byte order
    /// (page after page: one operation per 100 keys).
    pub fn keys(prefix: &str) -> Result<Vec<String>, Error> {
        let mut all = Vec::new();
        loop {
            let page = keys_after(prefix, all.last().map(String::as_str))?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// One page of the keys that start with `prefix`: at most 1,000, those
    /// after `after` if given.
    pub fn keys_after(prefix: &str, after: Option<&str>) -> Result<Vec<String>, Error> {
        imp::keys(prefix, after)
    }

    impl Error {
        /// What went wrong, in a sentence (the generated `Display` is the
        /// variant's debug form).
        pub fn message(&self) -> String {
            match self {
                Error::Invalid(why) => format!("invalid: {why}"),
                Error::TooLarge(max) => format!("value longer than {max} bytes"),
                Error::Full(why) => format!("full: {why}"),
                Error::TooManyOperations(max) => {
                    format!("more than {max} state operations in one message")
                }
                Error::NotANumber => "not a number".into(),
                Error::Unavailable(why) => format!("state unavailable: {why}"),
            }
        }
    }

    #[cfg(target_arch = "wasm32")]
    mod imp {
        use super::Error;
        pub use crate::bindings::wasmbot::plugin::state::{delete, get, increment};

        pub fn set(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), Error> {
            crate::bindings::wasmbot::plugin::state::set(key, value, ttl_ms)
        }

        pub fn keys(prefix: &str, after: Option<&str>) -> Result<Vec<String>, Error> {
            crate::bindings::wasmbot::plugin::state::keys(prefix, after)
        }
    }

    /// The host's rules, in memory: keys of 1 to 256 bytes, values up to
    /// 64 KiB, `increment` on canonical decimal text, expiry.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) mod imp {
        use super::Error;
        use std::cell::RefCell;
        use std::collections::BTreeMap;
        use std::time::{Duration, Instant};

        /// Each key's value and when it expires.
        type Map = BTreeMap<String, (Vec<u8>, Option<Instant>)>;

        thread_local! {
            pub(crate) static STATE: RefCell<Map> = const { RefCell::new(BTreeMap::new()) };
        }

        fn valid(key: &str) -> Result<(), Error> {
            if key.is_empty() || key.len() > 256 {
                return Err(Error::Invalid(format!(
                    "a key is 1 to 256 bytes, not {}",
                    key.len()
                )));
            }
            Ok(())
        }

        fn live<T>(f: impl FnOnce(&mut BTreeMap<String, (Vec<u8>, Option<Instant>)>) -> T) -> T {
            STATE.with(|s| {
                let mut s = s.borrow_mut();
                let now = Instant::now();
                s.retain(|_, (_, expires)| expires.is_none_or(|e| e > now));
                f(&mut s)
            })
        }

        pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
            valid(key)?;
            Ok(live(|s| s.get(key).map(|(v, _)| v.clone())))
        }

        pub fn set(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), Error> {
            valid(key)?;
            if value.len() > 64 << 10 {
                return Err(Error::TooLarge(64 << 10));
            }
            if ttl_ms.is_some_and(|t| t == 0 || t > 365 * 24 * 3600 * 1000) {
                return Err(Error::Invalid("a time to live is 1 ms to a year".into()));
            }
            let expires = ttl_ms.map(|t| Instant::now() + Duration::from_millis(t));
            live(|s| s.insert(key.into(), (value.to_vec(), expires)));
            Ok(())
        }

        pub fn delete(key: &str) -> Result<bool, Error> {
            valid(key)?;
            Ok(live(|s| s.remove(key).is_some()))
        }

        pub fn increment(key: &str, delta: i64) -> Result<i64, Error> {
            valid(key)?;
            live(|s| {
                let (sum, expires) = match s.get(key) {
                    Some((value, expires)) => {
                        let n = std::str::from_utf8(value)
                            .ok()
                            .and_then(|t| t.parse::<i64>().ok().filter(|n| n.to_string() == t))
                            .ok_or(Error::NotANumber)?;
                        (n.checked_add(delta).ok_or(Error::NotANumber)?, *expires)
                    }
                    None => (delta, None),
                };
                s.insert(key.into(), (sum.to_string().into_bytes(), expires));
                Ok(sum)
            })
        }

        pub fn keys(prefix: &str, after: Option<&str>) -> Result<Vec<String>, Error> {
            use std::ops::Bound;
            let from = match after {
                Some(after) if after >= prefix => Bound::Excluded(after.to_owned()),
                _ => Bound::Included(prefix.to_owned()),
            };
            Ok(live(|s| {
                s.range((from, Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .take(1000)
                    .map(|(k, _)| k.clone())
                    .collect()
            }))
        }
    }
}

/// Replying later, after Twilio's 15-second webhook limit (see `interface
/// later` in the contract): call [`later::defer`] in `handle` before the
/// slow part; the webhook is answered at once with `interim`, and what
/// `handle` returns is sent afterwards through Twilio's Messages API. If
/// it fails (the operator set no Twilio credentials, or too many replies
/// are being prepared), nothing changed: answer now. In native tests it
/// succeeds and [`testing::deferred`] tells what was deferred.
///
/// ```ignore
/// use wasmbot_plugin::later;
/// if let Err(e) = later::defer(Some("Let me think…")) {
///     log(Level::Info, &format!("answering now: {}", e.message()));
/// }
/// let answer = slow_api(&msg.body)?; // may take a minute now
/// ```
pub mod later {
    pub use crate::bindings::wasmbot::plugin::later::Error;

    /// Answer this message later, with `interim` as this plugin's part of
    /// the webhook's reply (or nothing from it).
    pub fn defer(interim: Option<&str>) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        {
            crate::bindings::wasmbot::plugin::later::defer(interim)
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            crate::testing::DEFERRED.with(|d| {
                d.borrow_mut().get_or_insert(interim.map(str::to_owned));
            });
            Ok(())
        }
    }

    impl Error {
        /// What went wrong, in a sentence.
        pub fn message(&self) -> String {
            match self {
                Error::Unavailable(why) => format!("replies later are unavailable: {why}"),
                Error::Busy => "as many replies later as allowed are being prepared".into(),
            }
        }
    }
}

/// Helpers for native unit tests of a plugin (`cargo test`).
pub mod testing {
    use super::{Media, Message};
    use std::cell::RefCell;
    use std::collections::HashMap;

    thread_local! {
        pub(crate) static CONFIG: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
        pub(crate) static DEFERRED: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
    }

    /// Whether [`later::defer`](super::later::defer) was called on this
    /// thread since the last call of this, and with which interim text
    /// (the first call's, as the host keeps it). Resets it.
    pub fn deferred() -> Option<Option<String>> {
        DEFERRED.with(|d| d.borrow_mut().take())
    }

    /// Empties this thread's in-memory [`state`](super::state).
    pub fn clear_state() {
        #[cfg(not(target_arch = "wasm32"))]
        super::state::imp::STATE.with(|s| s.borrow_mut().clear());
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
    fn state_keeps_the_hosts_rules_natively() {
        use std::time::Duration;
        testing::clear_state();
        assert_eq!(state::get("k").unwrap(), None);
        state::set_text("todo:2", "milk", None).unwrap();
        state::set_text("todo:1", "eggs", None).unwrap();
        state::set_text("other", "x", None).unwrap();
        assert_eq!(state::keys("todo:").unwrap(), ["todo:1", "todo:2"]);
        assert_eq!(
            state::keys_after("todo:", Some("todo:1")).unwrap(),
            ["todo:2"]
        );
        for i in 0..1500 {
            state::set(&format!("many:{i:04}"), b"", None).unwrap();
        }
        assert_eq!(state::keys_after("many:", None).unwrap().len(), 1000);
        assert_eq!(state::keys("many:").unwrap().len(), 1500);
        assert_eq!(state::get_text("todo:2").unwrap().as_deref(), Some("milk"));
        assert_eq!(state::increment("n", 2).unwrap(), 2);
        assert_eq!(state::increment("n", -5).unwrap(), -3);
        assert!(matches!(
            state::increment("other", 1),
            Err(state::Error::NotANumber)
        ));
        assert!(state::delete("other").unwrap());
        assert!(!state::delete("other").unwrap());
        assert!(matches!(state::get(""), Err(state::Error::Invalid(_))));
        assert!(matches!(
            state::set("big", &vec![0; (64 << 10) + 1], None),
            Err(state::Error::TooLarge(_))
        ));
        state::set_text("brief", "x", Some(Duration::from_millis(1))).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(state::get("brief").unwrap(), None);
        testing::clear_state();
        assert!(state::keys("").unwrap().is_empty());
    }

    #[test]
    fn deferring_is_recorded_natively() {
        assert_eq!(testing::deferred(), None);
        later::defer(Some("on it")).unwrap();
        later::defer(None).unwrap();
        assert_eq!(testing::deferred(), Some(Some("on it".into())));
        assert_eq!(testing::deferred(), None);
    }

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
