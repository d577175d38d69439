//! The `cat` behaviour: a message containing "cat" gets a cat picture.
//! No I/O: the reply carries the picture's URL and Twilio fetches it.

use wasmbot_plugin::{Message, Plugin, PluginInfo, Reply, Trigger};

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

pub struct Cat;

impl Plugin for Cat {
    fn describe() -> PluginInfo {
        wasmbot_plugin::info(
            "cat",
            env!("CARGO_PKG_VERSION"),
            "Answers \"cat\" with a cat picture",
        )
        .priority(200)
        .setting(
            "url",
            Some(DEFAULT_URL),
            "URL of the picture Twilio fetches",
        )
        .trigger(Trigger::Contains(KEYWORD.into()))
    }

    fn handle(msg: Message) -> Result<Option<Reply>, String> {
        if !wants_cat(&msg.body) {
            return Ok(None);
        }
        let url = wasmbot_plugin::config("url").unwrap_or_else(|| DEFAULT_URL.into());
        Ok(Some(Reply::media(url)))
    }
}

wasmbot_plugin::export!(Cat);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmbot_plugin::testing;

    #[test]
    fn answers_cat_in_any_case_and_position() {
        for body in ["cat", "CAT", "a Cat please", "quote and a cat"] {
            assert!(wants_cat(body), "{body}");
        }
        for body in ["", "hello", "ca t", "dog"] {
            assert!(!wants_cat(body), "{body}");
        }
    }

    #[test]
    fn answers_with_the_configured_picture_and_stays_silent_otherwise() {
        let reply = Cat::handle(testing::message("a cat please")).unwrap();
        assert_eq!(reply.unwrap().media, [DEFAULT_URL]);
        testing::set_config("url", "https://example.com/cat.jpg");
        let reply = Cat::handle(testing::message("CAT")).unwrap();
        assert_eq!(reply.unwrap().media, ["https://example.com/cat.jpg"]);
        assert!(Cat::handle(testing::message("dog")).unwrap().is_none());
        assert_eq!(Cat::describe().priority, 200);
    }
}
