//! Test-only guest: loops forever on every message. The host must cut it
//! at its deadline and still answer with the other plugins in time.
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ path: "../../../wit/0.1", world: "behaviour" });

use exports::wasmbot::plugin::handler::Guest;
use wasmbot::plugin::types::{Message, PluginInfo, Reply};

struct Spin;

impl Guest for Spin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "spin".into(),
            version: "0.0.1".into(),
            description: "never returns".into(),
            priority: 0,
            settings: Vec::new(),
        }
    }

    fn handle(msg: Message) -> Result<Option<Reply>, String> {
        let mut n = msg.body.len() as u64;
        loop {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export!(Spin);
