//! Merge: the replies of every plugin that answered, in plugin order,
//! become the messages of one answer. Pure: no I/O.
//!
//! - Every text goes into one body, in plugin order, separated by a blank
//!   line.
//! - The first media rides in the first message, so the body is its
//!   caption (the seed's "quote and a cat" reply). How many media a message
//!   carries depends on the channel of the sender ([`Channel`]): WhatsApp
//!   takes one per message, so every further one gets a message of its
//!   own; SMS/MMS takes up to 10 in one message.
//! - A body longer than Twilio's 1600 characters is split across messages,
//!   at a line break or space where there is one.
//! - Media must be absolute `http(s)` URLs of sane length; others are
//!   dropped (and logged).
//! - At most `max_messages` messages, and media only while the TwiML stays
//!   within `max_twiml_bytes` (Twilio refuses a reply over 64 kB).
//! - Nothing to send at all → the apology.

use crate::message::{Outgoing, Reply};
use crate::twiml;

/// Bounds on what one answer may contain.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Characters per `<Body>`: Twilio's limit is 1600.
    pub max_body_chars: usize,
    /// Messages per answer. 5 × 1600 characters, each escaped to at most 6
    /// bytes (`&quot;`), leaves room for media under Twilio's 64 kB.
    pub max_messages: usize,
    /// Media per SMS/MMS message: Twilio's limit is 10.
    pub max_mms_media: usize,
    /// Longest media URL accepted.
    pub max_media_url: usize,
    /// Characters of one plugin's text kept (more could never be sent).
    pub max_text_chars: usize,
    /// The TwiML document's size, escaped: media that would go past it are
    /// dropped (Twilio's limit is 64 kB).
    pub max_twiml_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_chars: 1600,
            max_messages: 5,
            max_mms_media: 10,
            max_media_url: 2048,
            max_text_chars: 5 * 1600,
            max_twiml_bytes: 60_000,
        }
    }
}

/// The channel a message came in on, as its `From` tells: it decides how
/// media are packed into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `From: whatsapp:+…`: one media per message.
    WhatsApp,
    /// Anything else (SMS/MMS): up to [`Limits::max_mms_media`] per message.
    Sms,
}

impl Channel {
    pub fn of(from: &str) -> Channel {
        let whatsapp = from
            .get(..9)
            .is_some_and(|p| p.eq_ignore_ascii_case("whatsapp:"));
        if whatsapp {
            Channel::WhatsApp
        } else {
            Channel::Sms
        }
    }

    fn media_per_message(self, limits: &Limits) -> usize {
        match self {
            Channel::WhatsApp => 1,
            Channel::Sms => limits.max_mms_media.max(1),
        }
    }
}

/// Merges `replies` (already in plugin order) into the messages to send
/// to a sender on `channel`; with nothing to send, the `apology`, or no
/// message at all without one.
pub fn merge<'a>(
    replies: impl IntoIterator<Item = (&'a str, &'a Reply)>,
    apology: Option<&str>,
    limits: &Limits,
    channel: Channel,
) -> Vec<Outgoing> {
    let replies: Vec<(&str, &Reply)> = replies.into_iter().collect();
    let per_message = channel.media_per_message(limits);
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
    // Likewise for the media the messages can carry.
    let showers = replies
        .iter()
        .filter(|(_, r)| !r.media.is_empty())
        .count()
        .max(1);
    let media_share = (limits.max_messages * per_message / showers).max(1);
    let mut texts = Vec::with_capacity(replies.len());
    let mut media = Vec::with_capacity(replies.len());
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
        match apology {
            Some(apology) => texts.push(apology),
            None => return Vec::new(),
        }
    }

    let body = texts.join("\n\n");
    let mut out: Vec<Outgoing> = split_body(&body, limits.max_body_chars.max(1))
        .into_iter()
        .map(|body| Outgoing {
            body: Some(body),
            media: Vec::new(),
        })
        .collect();
    if out.len() > limits.max_messages {
        tracing::warn!(
            messages = out.len(),
            kept = limits.max_messages,
            "answer too long; later messages dropped"
        );
        out.truncate(limits.max_messages.max(1));
    }
    // Media go into the first message, then into messages of their own,
    // while there is room in the message count and in the document.
    let mut room = limits.max_twiml_bytes.saturating_sub(
        twiml::DOCUMENT_BYTES + out.iter().map(twiml::message_bytes).sum::<usize>(),
    );
    let mut slot = 0; // the message the next media goes into
    let mut dropped = 0;
    for url in media {
        let size = twiml::media_bytes(url);
        let in_slot = out.get(slot).map_or(0, |m| m.media.len());
        if in_slot == per_message {
            slot = out.len();
        }
        let opens = slot == out.len();
        let cost = size + if opens { twiml::MESSAGE_BYTES } else { 0 };
        if cost > room || (opens && out.len() == limits.max_messages) {
            dropped += 1;
            continue;
        }
        room -= cost;
        if opens {
            out.push(Outgoing::default());
        }
        out[slot].media.push(url.to_owned());
    }
    if dropped > 0 {
        tracing::warn!(dropped, "answer too long; media dropped");
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
        let url = prop_oneof![
            "https://[a-z]{1,8}/[a-z0-9&<>?=]{0,20}",
            ".{0,30}",
            "https://x/[&\"']{1900,2030}",
        ];
        (text, proptest::collection::vec(url, 0..15))
            .prop_map(|(text, media)| Reply { text, media })
    }

    proptest! {
        /// Whatever the plugins answer, the TwiML is well-formed XML within
        /// Twilio's limits: at most `max_messages` messages, each with a
        /// body of at most 1600 characters or media (one on WhatsApp, at
        /// most 10 on SMS), and under 64 kB.
        #[test]
        fn always_well_formed_and_within_limits(
            replies in proptest::collection::vec(any_reply(), 0..6),
            whatsapp in any::<bool>(),
        ) {
            let named: Vec<(String, Reply)> =
                replies.into_iter().enumerate().map(|(i, r)| (format!("p{i}"), r)).collect();
            let limits = Limits::default();
            let channel = if whatsapp { Channel::WhatsApp } else { Channel::Sms };
            let out = merge(named.iter().map(|(n, r)| (n.as_str(), r)), Some(SORRY), &limits, channel);
            prop_assert!(!out.is_empty() && out.len() <= limits.max_messages);
            let per_message = if whatsapp { 1 } else { 10 };
            for m in &out {
                prop_assert!(m.body.is_some() || !m.media.is_empty());
                prop_assert!(m.media.len() <= per_message);
                if let Some(body) = &m.body {
                    prop_assert!(!body.is_empty() && body.chars().count() <= 1600);
                }
            }
            let xml = crate::twiml::render(&out);
            prop_assert!(xml.len() <= limits.max_twiml_bytes, "{} bytes", xml.len());
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
        mms(body, media.as_slice())
    }
    fn mms(body: Option<&str>, media: &[&str]) -> Outgoing {
        Outgoing {
            body: body.map(Into::into),
            media: media.iter().map(|u| u.to_string()).collect(),
        }
    }
    fn on(channel: Channel, replies: &[(&str, Reply)]) -> Vec<Outgoing> {
        merge(
            replies.iter().map(|(n, r)| (*n, r)),
            Some(SORRY),
            &Limits::default(),
            channel,
        )
    }
    fn run(replies: &[(&str, Reply)]) -> Vec<Outgoing> {
        on(Channel::WhatsApp, replies)
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
    fn without_an_apology_nothing_to_send_is_no_message() {
        let nothing = [("a", text("  ")), ("b", media(&["ftp://x/y.png"]))];
        let out = merge(
            nothing.iter().map(|(n, r)| (*n, r)),
            None,
            &Limits::default(),
            Channel::WhatsApp,
        );
        assert_eq!(out, vec![]);
        let some = [("a", text("hi"))];
        let out = merge(
            some.iter().map(|(n, r)| (*n, r)),
            None,
            &Limits::default(),
            Channel::WhatsApp,
        );
        assert_eq!(out, vec![msg(Some("hi"), None)]);
    }

    #[test]
    fn long_bodies_split_at_spaces_within_the_limit() {
        let word = "abcdefghi "; // 10 chars
        let long = word.repeat(400); // 4000 chars
        let out = run(&[("a", text(&long)), ("c", media(&["https://x/c"]))]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].media, ["https://x/c"]);
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
                .any(|m| m.media.iter().any(|u| u == "https://cataas.com/cat"))
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

    #[test]
    fn the_channel_is_told_by_from() {
        assert_eq!(Channel::of("whatsapp:+14155550100"), Channel::WhatsApp);
        assert_eq!(Channel::of("WhatsApp:+14155550100"), Channel::WhatsApp);
        assert_eq!(Channel::of("+14155550100"), Channel::Sms);
        assert_eq!(Channel::of(""), Channel::Sms);
        assert_eq!(Channel::of("whats"), Channel::Sms);
        assert_eq!(Channel::of("é"), Channel::Sms);
    }

    #[test]
    fn an_mms_carries_up_to_ten_media_in_one_message() {
        let urls: Vec<String> = (0..12).map(|i| format!("https://x/{i}")).collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let replies = [("quote", text("Q - A")), ("pictures", media(&urls))];
        assert_eq!(
            on(Channel::Sms, &replies),
            [mms(Some("Q - A"), &urls[..10]), mms(None, &urls[10..])]
        );
        // The same answer on WhatsApp: one media per message, five messages.
        let whatsapp = on(Channel::WhatsApp, &replies);
        assert_eq!(whatsapp.len(), 5);
        assert!(whatsapp.iter().all(|m| m.media.len() == 1));
        // The seed's "quote and a cat" is one message on both.
        let cat = [("quote", text("Q - A")), ("cat", media(&["https://c/1"]))];
        assert_eq!(on(Channel::Sms, &cat), on(Channel::WhatsApp, &cat));
    }

    #[test]
    fn media_stop_where_the_twiml_would_pass_its_size_limit() {
        // Ten URLs that escape to 10 kB each: together far past 64 kB.
        let urls: Vec<String> = (0..10)
            .map(|i| format!("https://x/{i}?{}", "&".repeat(2000)))
            .collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let out = on(Channel::Sms, &[("a", media(&urls))]);
        let kept = out[0].media.len();
        assert!((1..10).contains(&kept), "{kept}");
        assert_eq!(out[0].media, urls[..kept]);
        let xml = crate::twiml::render(&out);
        assert!(xml.len() <= Limits::default().max_twiml_bytes);
        assert!(xml.len() > Limits::default().max_twiml_bytes - 11_000);
    }
}
