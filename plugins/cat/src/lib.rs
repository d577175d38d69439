//! The `cat` behaviour: a message containing "cat" gets a cat picture.
//! No I/O: the reply carries the picture's URL and Twilio fetches it.

/// Cat as a Service: a random cat picture per request.
pub const DEFAULT_URL: &str = "https://cataas.com/cat";

/// The seed answers any message that contains "cat", in any case: the
/// plugin's trigger, so the host calls it for nothing else.
pub const KEYWORD: &str = "cat";

/// Whether a message asks for a cat (the trigger, checked again so the
/// plugin is right on its own too).
pub fn wants_cat(body: &str) -> bool {
    body.to_lowercase().contains(KEYWORD)
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit", world: "behaviour" });

    use exports::wasmbot::plugin::handler::Guest;
    use wasmbot::plugin::config;
    use wasmbot::plugin::types::{Message, PluginInfo, Reply, Setting, Trigger};

    struct Cat;

    impl Guest for Cat {
        fn describe() -> PluginInfo {
            PluginInfo {
                name: "cat".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "Answers \"cat\" with a cat picture".into(),
                priority: 200,
                settings: vec![Setting {
                    key: "url".into(),
                    default: Some(super::DEFAULT_URL.into()),
                    description: "URL of the picture Twilio fetches".into(),
                }],
                triggers: vec![Trigger::Contains(super::KEYWORD.into())],
            }
        }

        fn handle(msg: Message) -> Result<Option<Reply>, String> {
            if !super::wants_cat(&msg.body) {
                return Ok(None);
            }
            let url = config::get("url").unwrap_or_else(|| super::DEFAULT_URL.into());
            Ok(Some(Reply {
                text: None,
                media: vec![url],
            }))
        }
    }

    export!(Cat);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_cat_in_any_case_and_position() {
        for body in ["cat", "CAT", "a Cat please", "quote and a cat"] {
            assert!(wants_cat(body), "{body}");
        }
        for body in ["", "hello", "ca t", "dog"] {
            assert!(!wants_cat(body), "{body}");
        }
    }
}
