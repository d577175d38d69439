//! The `ask` behaviour: "ask <question>" is answered by a language model
//! behind an OpenAI-compatible chat-completions API (setting `url`).
//!
//! The example of replying later: a model can take longer than Twilio's
//! 15 seconds, so the plugin defers its reply (`later::defer`) with an
//! interim text, and the host sends the answer through Twilio's Messages
//! API when it comes. When the host cannot (no Twilio credentials, or too
//! many replies pending), the plugin says so or answers within the usual
//! time limit. The request and the answer's parsing are plain Rust,
//! tested natively.

use serde::Deserialize;
use wasmbot_plugin::http::{self, Error as HttpError, Method, Request};
use wasmbot_plugin::{Level, Message, Plugin, PluginInfo, Reply, Trigger, later};

pub const DEFAULT_URL: &str = "https://api.openai.com/v1/chat/completions";
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_INTERIM: &str = "Let me think about that…";

/// The command word.
pub const COMMAND: &str = "ask";

/// Said when "ask" comes without a question.
pub const USAGE: &str = "Ask me anything: \"ask why is the sky blue?\"";

/// Said when the host has no room for one more reply later.
pub const BUSY: &str = "Many questions are being answered right now; ask again in a minute.";

/// Longest question sent (characters): a WhatsApp message is at most 1600.
const MAX_QUESTION: usize = 1600;

/// The question in `body`, if it is an "ask" command: `Some("")` for
/// "ask" alone.
pub fn question(body: &str) -> Option<&str> {
    let body = body.trim_start();
    let rest = body
        .get(..COMMAND.len())
        .filter(|word| word.eq_ignore_ascii_case(COMMAND))
        .map(|_| &body[COMMAND.len()..])?;
    // "asking" is not "ask".
    if rest
        .chars()
        .next()
        .is_some_and(|c| !c.is_whitespace() && c != ':')
    {
        return None;
    }
    Some(rest.trim_start_matches(':').trim())
}

/// The chat-completions request for `question`.
pub fn request_body(model: &str, question: &str) -> Vec<u8> {
    let question: String = question.chars().take(MAX_QUESTION).collect();
    serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "Answer briefly: your answer is read on a phone."},
            {"role": "user", "content": question},
        ],
    })
    .to_string()
    .into_bytes()
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

/// The model's answer in the API's response, or why there is none.
pub fn answer(status: u16, body: &[u8]) -> Result<String, String> {
    if status != 200 {
        return Err(format!("the model API answered {status}"));
    }
    let completion: Completion =
        serde_json::from_slice(body).map_err(|e| format!("not a chat completion: {e}"))?;
    completion
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.message.content)
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .ok_or_else(|| "the model gave no answer".to_owned())
}

pub struct Ask;

impl Plugin for Ask {
    fn describe() -> PluginInfo {
        wasmbot_plugin::info(
            "ask",
            env!("CARGO_PKG_VERSION"),
            "Answers \"ask <question>\" with a language model, replying later",
        )
        .setting(
            "url",
            Some(DEFAULT_URL),
            "OpenAI-compatible chat-completions endpoint",
        )
        .setting("model", Some(DEFAULT_MODEL), "the model asked")
        .setting("api_key", None, "sent as Authorization: Bearer <api_key>")
        .setting(
            "interim",
            Some(DEFAULT_INTERIM),
            "sent at once, before the answer",
        )
        .trigger(Trigger::Prefix(COMMAND.into()))
    }

    fn handle(msg: Message) -> Result<Option<Reply>, String> {
        let Some(question) = question(&msg.body) else {
            return Ok(None);
        };
        if question.is_empty() {
            return Ok(Some(Reply::text(USAGE)));
        }
        let setting = |key: &str, default: &str| {
            wasmbot_plugin::config(key).unwrap_or_else(|| default.to_owned())
        };
        let interim = setting("interim", DEFAULT_INTERIM);
        match later::defer(Some(&interim).filter(|i| !i.is_empty()).map(String::as_str)) {
            Ok(()) => {}
            Err(later::Error::Busy) => return Ok(Some(Reply::text(BUSY))),
            // No replies later on this host: try within the usual limit.
            Err(e) => wasmbot_plugin::log(Level::Info, &format!("answering now: {}", e.message())),
        }
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(key) = wasmbot_plugin::config("api_key").filter(|k| !k.is_empty()) {
            headers.push(("authorization".to_owned(), format!("Bearer {key}")));
        }
        let response = http::send(&Request {
            method: Method::Post,
            url: setting("url", DEFAULT_URL),
            headers,
            body: Some(request_body(&setting("model", DEFAULT_MODEL), question)),
        })
        .map_err(|e| match e {
            HttpError::InvalidUrl(why) => format!("invalid URL {why}"),
            HttpError::Denied(host) => format!("host {host} is not allowed"),
            HttpError::Timeout => "the model API timed out".to_owned(),
            HttpError::TooLarge => "the model API's answer is too large".to_owned(),
            HttpError::Transport(why) => format!("the model API is unreachable: {why}"),
        })?;
        // A failure is the host's apology to the user, and logged.
        answer(response.status, &response.body).map(|text| Some(Reply::text(text)))
    }
}

wasmbot_plugin::export!(Ask);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmbot_plugin::testing;

    #[test]
    fn finds_the_question() {
        assert_eq!(
            question("ask why is the sky blue?"),
            Some("why is the sky blue?")
        );
        assert_eq!(question("  ASK: what now "), Some("what now"));
        assert_eq!(question("ask"), Some(""));
        assert_eq!(question("asking for a friend"), None);
        assert_eq!(question("please ask"), None);
        assert_eq!(question("as"), None);
        assert_eq!(question("åsk x"), None);
    }

    #[test]
    fn sends_the_question_and_reads_the_answer() {
        let body: serde_json::Value = serde_json::from_slice(&request_body("m1", "why?")).unwrap();
        assert_eq!(body["model"], "m1");
        assert_eq!(body["messages"][1]["content"], "why?");
        let long = "x".repeat(5000);
        let body: serde_json::Value = serde_json::from_slice(&request_body("m1", &long)).unwrap();
        assert_eq!(body["messages"][1]["content"].as_str().unwrap().len(), 1600);

        let ok =
            br#"{"choices":[{"message":{"role":"assistant","content":" Rayleigh scattering. "}}]}"#;
        assert_eq!(answer(200, ok).as_deref(), Ok("Rayleigh scattering."));
        assert!(answer(500, ok).is_err());
        assert!(answer(200, b"<html>").is_err());
        assert!(answer(200, br#"{"choices":[]}"#).is_err());
        assert!(answer(200, br#"{"choices":[{"message":{"content":"  "}}]}"#).is_err());
    }

    /// (What it does with a question needs the host's HTTP: the
    /// end-to-end tests run it, `tests/e2e/later.rs`.)
    #[test]
    fn answers_at_once_what_needs_no_model() {
        testing::deferred();
        let usage = Ask::handle(testing::message("ask")).unwrap();
        assert_eq!(usage.unwrap().text.as_deref(), Some(USAGE));
        assert!(Ask::handle(testing::message("asking")).unwrap().is_none());
        assert_eq!(testing::deferred(), None, "nothing slow: not deferred");
    }
}
