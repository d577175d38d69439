//! Test-only guest: a plugin that hoards state. The message body names
//! what it tries; the host must hold it to its quotas and report each
//! limit as an error value, while the plugins next to it answer normally.
//!
//! | body | what it does | answers |
//! |---|---|---|
//! | `flood` | sets keys `k0`, `k1`, … until a set fails | how many it set, and the error |
//! | `spin` | reads one key over and over until a read fails | how many reads, and the error |
//! | `big` | sets a value one byte over 64 KiB | the error |
//! | `count` | how many keys it holds | the number |
//! | `wipe` | deletes every key it holds | how many |
#![cfg(target_arch = "wasm32")]

use wasmbot_plugin::{Message, Plugin, PluginInfo, Reply, Trigger, state};

struct Hoarder;

fn first_failure(mut op: impl FnMut(u32) -> Result<(), state::Error>) -> String {
    for i in 0..1_000_000 {
        if let Err(e) = op(i) {
            return format!("{i} then {}", e.message());
        }
    }
    "no limit".into()
}

impl Plugin for Hoarder {
    fn describe() -> PluginInfo {
        wasmbot_plugin::info("hoarder", "0.0.1", "hoards state, one way per message")
            .trigger(Trigger::Prefix("flood".into()))
            .trigger(Trigger::Prefix("spin".into()))
            .trigger(Trigger::Prefix("big".into()))
            .trigger(Trigger::Prefix("count".into()))
            .trigger(Trigger::Prefix("wipe".into()))
    }

    fn handle(msg: Message) -> Result<Option<Reply>, String> {
        let text = match msg.body.trim() {
            "flood" => first_failure(|i| state::set(&format!("k{i}"), b"v", None)),
            "spin" => first_failure(|_| state::get("k0").map(drop)),
            "big" => match state::set("big", &vec![b'x'; (64 << 10) + 1], None) {
                Ok(()) => "stored".into(),
                Err(e) => e.message(),
            },
            "count" => state::keys("")
                .map(|k| k.len().to_string())
                .map_err(|e| e.message())?,
            "wipe" => {
                let keys = state::keys("").map_err(|e| e.message())?;
                for key in &keys {
                    state::delete(key).map_err(|e| e.message())?;
                }
                keys.len().to_string()
            }
            _ => return Ok(None),
        };
        Ok(Some(Reply::text(text)))
    }
}

wasmbot_plugin::export!(Hoarder);
