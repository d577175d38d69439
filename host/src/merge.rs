//! Merge: the replies of every plugin that answered, in plugin order,
//! become the messages of one answer. Pure: no I/O.
//!
//! - Every text goes into one body, in plugin order, separated by a blank
//!   line.
//! - The first media item rides in the first message, so the body is its
//!   caption (the seed's "quote and a cat" reply); WhatsApp takes one media
//!   item per message, so every further one gets a message of its own.
//! - A body longer than Twilio's 1600 characters is split across messages,
//!   at a line break or space where there is one.
//! - Media must be absolute `http(s)` URLs of sane length; others are
//!   dropped (and logged).
//! - At most `max_messages` messages, which keeps the TwiML well under
//!   Twilio's 64 kB whatever the characters.
//! - Nothing to send at all → the apology.

use crate::message::{Outgoing, Reply};

/// Bounds on what one answer may contain.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Characters per `<Body>`: Twilio's limit is 1600.
    pub max_body_chars: usize,
    /// Messages per answer. 5 × 1600 characters, each escaped to at most 6
    /// bytes (`&quot;`), stays under Twilio's 64 kB response limit.
    pub max_messages: usize,
    /// Longest media URL accepted.
    pub max_media_url: usize,
    /// Characters of one plugin's text kept (more could never be sent).
    pub max_text_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_chars: 1600,
            max_messages: 5,
            max_media_url: 2048,
            max_text_chars: 5 * 1600,
        }
    }
}

/// Merges `replies` (already in plugin order) into the messages to send.
pub fn merge<'a>(
    replies: impl IntoIterator<Item = (&'a str, &'a Reply)>,
    apology: &str,
    limits: &Limits,
) -> Vec<Outgoing> {
    let replies: Vec<(&str, &Reply)> = replies.into_iter().collect();
    let texts_of = |reply: &'a Reply| {
        reply
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    // Every answering plugin gets a fair share of the text that can be
    // sent, so one verbose plugin cannot crowd the others out.
    let speakers = replies
        .iter()
        .filter(|(_, r)| texts_of(r).is_some())
        .count()
        .max(1);
    let share = (limits.max_text_chars / speakers).max(1);
    // Likewise for the messages media items take.
    let showers = replies
        .iter()
        .filter(|(_, r)| !r.media.is_empty())
        .count()
        .max(1);
    let media_share = (limits.max_messages / showers).max(1);
    let mut texts = Vec::new();
    let mut media = Vec::new();
    for (plugin, reply) in replies {
        if let Some(text) = texts_of(reply) {
            let kept = truncate(text, share);
            if kept.len() < text.len() {
                tracing::warn!(
                    plugin,
                    bytes = text.len(),
                    "text truncated to {share} characters"
                );
            }
            texts.push(kept);
        }
        let mut kept = 0;
        // Invalid URLs are dropped, so look a little further than the share.
        for url in reply.media.iter().take(media_share * 4) {
            match check_media(url, limits) {
                Ok(()) if kept < media_share => {
                    media.push(url.as_str());
                    kept += 1;
                }
                Ok(()) => {}
                Err(why) => {
                    tracing::warn!(plugin, url = %truncate(url, 120), "media dropped: {why}")
                }
            }
        }
        if reply.media.len() > kept {
            tracing::warn!(
                plugin,
                media = reply.media.len(),
                "only {kept} media items kept"
            );
        }
    }
    if texts.is_empty() && media.is_empty() {
        texts.push(apology);
    }

    let body = texts.join("\n\n");
    let mut chunks = split_body(&body, limits.max_body_chars.max(1)).into_iter();
    let mut media = media.into_iter();
    let mut out = Vec::new();
    let first_body = chunks.next();
    let first_media = media.next();
    if first_body.is_some() || first_media.is_some() {
        out.push(Outgoing {
            body: first_body,
            media: first_media.map(str::to_owned),
        });
    }
    out.extend(chunks.map(|body| Outgoing {
        body: Some(body),
        media: None,
    }));
    out.extend(media.map(|url| Outgoing {
        body: None,
        media: Some(url.to_owned()),
    }));
    if out.len() > limits.max_messages {
        tracing::warn!(
            messages = out.len(),
            kept = limits.max_messages,
            "answer too long; later messages dropped"
        );
        out.truncate(limits.max_messages.max(1));
    }
    out
}

fn check_media(url: &str, limits: &Limits) -> Result<(), &'static str> {
    if url.len() > limits.max_media_url {
        return Err("URL too long");
    }
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err("not an absolute http(s) URL"),
    }
}

fn truncate(s: &str, chars: usize) -> &str {
    s.char_indices().nth(chars).map_or(s, |(i, _)| &s[..i])
}

/// Splits `body` into pieces of at most `max` characters, breaking after
/// the last line break, else the last space, of the second half of a piece
/// when there is one.
fn split_body(body: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let Some((hard, _)) = rest.char_indices().nth(max) else {
            out.push(rest.to_owned());
            break;
        };
        let window = &rest[..hard];
        let half = window.char_indices().nth(max / 2).map_or(0, |(i, _)| i);
        let cut = window[half..]
            .rfind('\n')
            .or_else(|| window[half..].rfind(' '))
            .map_or(hard, |i| half + i + 1);
        let (piece, tail) = rest.split_at(cut);
        out.push(piece.trim_end().to_owned());
        rest = tail.trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_reply() -> impl Strategy<Value = Reply> {
        let text = proptest::option::of(prop_oneof![
            ".{0,40}",
            "[a-z &<>\"'\n]{0,3000}",
            "\\PC{0,2000}",
            any::<String>(),
        ]);
        let url = prop_oneof!["https://[a-z]{1,8}/[a-z0-9&<>?=]{0,20}", ".{0,30}"];
        (text, proptest::collection::vec(url, 0..15))
            .prop_map(|(text, media)| Reply { text, media })
    }

    proptest! {
        /// Whatever the plugins answer, the TwiML is well-formed XML within
        /// Twilio's limits: at most `max_messages` messages, each with a
        /// body of at most 1600 characters or a media item, and far below
        /// 64 kB.
        #[test]
        fn always_well_formed_and_within_limits(
            replies in proptest::collection::vec(any_reply(), 0..6)
        ) {
            let named: Vec<(String, Reply)> =
                replies.into_iter().enumerate().map(|(i, r)| (format!("p{i}"), r)).collect();
            let limits = Limits::default();
            let out = merge(named.iter().map(|(n, r)| (n.as_str(), r)), SORRY, &limits);
            prop_assert!(!out.is_empty() && out.len() <= limits.max_messages);
            for m in &out {
                prop_assert!(m.body.is_some() || m.media.is_some());
                if let Some(body) = &m.body {
                    prop_assert!(!body.is_empty() && body.chars().count() <= 1600);
                }
            }
            let xml = crate::twiml::render(&out);
            prop_assert!(xml.len() < 64_000, "{} bytes", xml.len());
            let mut reader = quick_xml::Reader::from_str(&xml);
            let mut messages = 0;
            loop {
                match reader.read_event() {
                    Ok(quick_xml::events::Event::Eof) => break,
                    Ok(quick_xml::events::Event::Start(e)) if e.name().as_ref() == b"Message" => {
                        messages += 1
                    }
                    Ok(_) => {}
                    Err(e) => prop_assert!(false, "malformed XML: {}\n{}", e, xml),
                }
            }
            prop_assert_eq!(messages, out.len());
        }
    }

    const SORRY: &str = "Apologies, I do not understand what you really asked.";

    fn text(t: &str) -> Reply {
        Reply {
            text: Some(t.into()),
            media: vec![],
        }
    }
    fn media(urls: &[&str]) -> Reply {
        Reply {
            text: None,
            media: urls.iter().map(|u| u.to_string()).collect(),
        }
    }
    fn msg(body: Option<&str>, media: Option<&str>) -> Outgoing {
        Outgoing {
            body: body.map(Into::into),
            media: media.map(Into::into),
        }
    }
    fn run(replies: &[(&str, Reply)]) -> Vec<Outgoing> {
        merge(
            replies.iter().map(|(n, r)| (*n, r)),
            SORRY,
            &Limits::default(),
        )
    }

    /// Replies in plugin order, and the messages they must merge into.
    type Case = (Vec<(&'static str, Reply)>, Vec<Outgoing>);

    #[test]
    fn rules() {
        let cat = "https://cataas.com/cat";
        let cases: Vec<Case> = vec![
            // nobody answered
            (vec![], vec![msg(Some(SORRY), None)]),
            // answers that carry nothing count as no answer
            (
                vec![("a", text("  ")), ("b", media(&[]))],
                vec![msg(Some(SORRY), None)],
            ),
            (
                vec![("quote", text("Q - A"))],
                vec![msg(Some("Q - A"), None)],
            ),
            (vec![("cat", media(&[cat]))], vec![msg(None, Some(cat))]),
            // the seed's "quote and a cat": one message, body as caption
            (
                vec![("quote", text("Q - A")), ("cat", media(&[cat]))],
                vec![msg(Some("Q - A"), Some(cat))],
            ),
            // texts joined in plugin order
            (
                vec![("a", text("one")), ("b", text("two"))],
                vec![msg(Some("one\n\ntwo"), None)],
            ),
            // one media per message
            (
                vec![
                    ("a", media(&["https://x/1", "https://x/2"])),
                    (
                        "b",
                        Reply {
                            text: Some("hi".into()),
                            media: vec!["https://x/3".into()],
                        },
                    ),
                ],
                vec![
                    msg(Some("hi"), Some("https://x/1")),
                    msg(None, Some("https://x/2")),
                    msg(None, Some("https://x/3")),
                ],
            ),
            // bad media dropped, the rest kept
            (
                vec![(
                    "a",
                    media(&[
                        "javascript:alert(1)",
                        "/relative",
                        "ftp://x/y",
                        "https://ok/1",
                    ]),
                )],
                vec![msg(None, Some("https://ok/1"))],
            ),
            // only bad media: the apology
            (
                vec![("a", media(&["file:///etc/passwd"]))],
                vec![msg(Some(SORRY), None)],
            ),
        ];
        for (replies, expected) in cases {
            assert_eq!(run(&replies), expected, "{replies:?}");
        }
    }

    #[test]
    fn long_bodies_split_at_spaces_within_the_limit() {
        let word = "abcdefghi "; // 10 chars
        let long = word.repeat(400); // 4000 chars
        let out = run(&[("a", text(&long)), ("c", media(&["https://x/c"]))]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].media.as_deref(), Some("https://x/c"));
        for m in &out {
            let body = m.body.as_deref().unwrap();
            assert!(body.chars().count() <= 1600, "{}", body.len());
            assert!(body.ends_with("abcdefghi"), "split inside a word");
        }
        let rejoined: Vec<String> = out.iter().map(|m| m.body.clone().unwrap()).collect();
        assert_eq!(rejoined.join(" "), long.trim_end());
    }

    #[test]
    fn split_without_spaces_counts_characters_not_bytes() {
        let long = "é".repeat(3201);
        let pieces = split_body(&long, 1600);
        assert_eq!(
            pieces.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            [1600, 1600, 1]
        );
    }

    #[test]
    fn a_verbose_plugin_cannot_crowd_out_the_others() {
        let flood = Reply {
            text: Some("x".repeat(1_000_000)),
            media: vec![],
        };
        let urls: Vec<String> = (0..10_000).map(|i| format!("https://x/{i}")).collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let out = run(&[
            ("flood", flood),
            ("pictures", media(&urls)),
            ("quote", text("Q - A")),
            ("cat", media(&["https://cataas.com/cat"])),
        ]);
        assert!(out.len() <= Limits::default().max_messages);
        assert!(
            out.iter()
                .any(|m| m.media.as_deref() == Some("https://cataas.com/cat"))
        );
        let bodies: Vec<&str> = out.iter().filter_map(|m| m.body.as_deref()).collect();
        assert!(bodies.concat().ends_with("Q - A"), "{:?}", bodies.last());
    }

    #[test]
    fn caps_the_number_of_messages() {
        let urls: Vec<String> = (0..50).map(|i| format!("https://x/{i}")).collect();
        let reply = Reply {
            text: Some("x".repeat(100_000)),
            media: urls,
        };
        let out = run(&[("flood", reply)]);
        assert_eq!(out.len(), Limits::default().max_messages);
    }

    #[test]
    fn overlong_media_urls_are_dropped() {
        let long = format!("https://x/{}", "a".repeat(5000));
        assert_eq!(run(&[("a", media(&[&long]))]), vec![msg(Some(SORRY), None)]);
    }
}
