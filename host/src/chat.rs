//! `wasmbot chat`: talk to the plugins without a phone or a Twilio account.
//! Messages go through the same dispatch and merge as `POST /bot`, with the
//! same plugins folder (hot reload included); replies are printed as a
//! person would see them, or as the raw TwiML.

use crate::Server;
use crate::message::{Inbound, Outgoing};
use std::io::Write;
use tokio::io::AsyncBufReadExt;

/// How the conversation is shown.
#[derive(Debug, Clone)]
pub struct Options {
    /// The sender, as Twilio would write it.
    pub from: String,
    /// Print the TwiML document instead of the messages.
    pub twiml: bool,
}

/// A message as Twilio would post it from `from`.
pub fn inbound(body: &str, from: &str, n: u64) -> Inbound {
    let sid = format!("SMchat{n:028}");
    let digits: String = from.chars().filter(char::is_ascii_digit).collect();
    Inbound::from_params([
        ("MessageSid", sid.as_str()),
        ("SmsMessageSid", sid.as_str()),
        ("AccountSid", "ACchat0000000000000000000000000000"),
        ("From", from),
        ("To", "whatsapp:+14155238886"),
        ("Body", body),
        ("NumMedia", "0"),
        ("ProfileName", "wasmbot chat"),
        ("WaId", digits.as_str()),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ])
}

/// The messages as a person reads them on the phone: one block per
/// message, the text, then the media it carries.
pub fn for_person(messages: &[Outgoing]) -> String {
    if messages.is_empty() {
        return "bot> (no reply)\n".to_owned();
    }
    let mut out = String::new();
    for m in messages {
        let mut lines = Vec::new();
        if let Some(body) = &m.body {
            lines.extend(body.lines().map(str::to_owned));
        }
        for url in &m.media {
            lines.push(format!("[media] {url}"));
        }
        for (i, line) in lines.iter().enumerate() {
            out.push_str(if i == 0 { "bot> " } else { "     " });
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Answers one message and returns what to print.
pub async fn answer(server: &Server, body: &str, options: &Options, n: u64) -> String {
    let answer = match server
        .state
        .dispatcher
        .dispatch(inbound(body, &options.from, n))
        .await
    {
        Ok(answer) => answer,
        Err(full) => return format!("bot> (busy: {full}; Twilio would retry)\n"),
    };
    let mut out = if options.twiml {
        crate::twiml::render(&answer.messages) + "\n"
    } else {
        for_person(&answer.messages)
    };
    for (plugin, error) in &answer.failed {
        out.push_str(&format!("     (plugin {plugin} failed: {error})\n"));
    }
    out
}

/// The interactive loop: a line in, the reply out, until end of input.
pub async fn repl(server: &Server, options: &Options) -> std::io::Result<()> {
    let names: Vec<String> = server
        .registry
        .snapshot()
        .plugins
        .iter()
        .map(|l| l.id.to_string())
        .collect();
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "wasmbot chat: {} plugin(s) from {} ({}); changes to the folder apply at once.\n\
         Type a message and press Enter; Ctrl-D quits.",
        names.len(),
        server.registry.dir().display(),
        names.join(", ")
    )?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut n = 0;
    loop {
        write!(stdout, "you> ")?;
        stdout.flush()?;
        let Some(line) = lines.next_line().await? else {
            writeln!(stdout)?;
            return Ok(());
        };
        n += 1;
        write!(
            stdout,
            "{}",
            answer(server, line.trim_end(), options, n).await
        )?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: Option<&str>, media: Option<&str>) -> Outgoing {
        Outgoing {
            body: body.map(Into::into),
            media: media.into_iter().map(Into::into).collect(),
        }
    }

    #[test]
    fn printed_as_a_person_sees_it() {
        let cases = [
            (vec![], "bot> (no reply)\n"),
            (vec![msg(Some("pong"), None)], "bot> pong\n"),
            (
                vec![msg(Some("Q - A"), Some("https://cataas.com/cat"))],
                "bot> Q - A\n     [media] https://cataas.com/cat\n",
            ),
            (
                vec![
                    msg(Some("two\nlines"), None),
                    msg(None, Some("https://x/2")),
                ],
                "bot> two\n     lines\nbot> [media] https://x/2\n",
            ),
        ];
        for (messages, expected) in cases {
            assert_eq!(for_person(&messages), expected);
        }
    }

    #[test]
    fn chat_messages_look_like_twilios() {
        let m = inbound("hi", "whatsapp:+15550001111", 7);
        assert_eq!(m.body, "hi");
        assert_eq!(m.from, "whatsapp:+15550001111");
        assert_eq!(m.wa_id.as_deref(), Some("15550001111"));
        assert_eq!(m.message_sid.len(), 34);
        assert!(m.message_sid.starts_with("SM"));
    }
}
