//! Test-only guest, contract 0.2: wants to be called for far more than a
//! plugin may ask — 33 triggers, one of them a pattern that would compile
//! to a huge automaton. The host must refuse it at load with the reason,
//! and keep serving the earlier version of its file.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ path: "../../../wit", world: "behaviour", generate_all });

use exports::wasmbot::plugin::handler::Guest;
use wasmbot::plugin::types::{Message, PluginInfo, Reply, Trigger};

struct Greedy;

impl Guest for Greedy {
    fn describe() -> PluginInfo {
        let mut triggers: Vec<Trigger> =
            (0..32).map(|i| Trigger::Word(format!("word{i}"))).collect();
        triggers.push(Trigger::Pattern(r"\w{1000}\w{1000}\w{1000}".into()));
        PluginInfo {
            name: "greedy".into(),
            version: "0.0.1".into(),
            description: "declares too many triggers".into(),
            priority: 0,
            settings: Vec::new(),
            triggers,
        }
    }

    fn handle(_: Message) -> Result<Option<Reply>, String> {
        Ok(Some(Reply {
            text: Some("greedy was called".into()),
            media: Vec::new(),
        }))
    }
}

export!(Greedy);
