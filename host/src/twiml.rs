//! TwiML for messaging: renders the merged messages as the XML document
//! Twilio expects. Pure: no I/O.
//!
//! Text is always escaped, and characters XML 1.0 forbids (most control
//! characters) are removed, so the document is well-formed whatever the
//! plugins returned (Twilio fails a malformed reply with error 12100).

use crate::message::Outgoing;
use quick_xml::Writer;
use quick_xml::events::BytesText;

/// The `Content-Type` of a TwiML response.
pub const CONTENT_TYPE: &str = "application/xml";

/// What quick-xml writes for `BytesDecl::new("1.0", Some("UTF-8"), None)`.
const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// Renders `messages` as a `<Response>`; no messages gives `<Response/>`,
/// which tells Twilio not to reply.
pub fn render(messages: &[Outgoing]) -> String {
    // The declaration is a constant: written as bytes, not built as an
    // event (quick-xml allocates one for it).
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(DECLARATION.as_bytes());
    let mut w = Writer::new(out);
    // Writing into a Vec cannot fail.
    let ok = |r: std::io::Result<()>| r.expect("writing to memory");
    if messages.is_empty() {
        ok(w.create_element("Response").write_empty().map(drop));
    } else {
        ok(w.create_element("Response")
            .write_inner_content(|w| {
                for m in messages {
                    w.create_element("Message").write_inner_content(|w| {
                        if let Some(body) = &m.body {
                            text_element(w, "Body", body)?;
                        }
                        for url in &m.media {
                            text_element(w, "Media", url)?;
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            })
            .map(drop));
    }
    String::from_utf8(w.into_inner()).expect("quick-xml writes UTF-8 from UTF-8 input")
}

/// Bytes of the document around the messages: the declaration and
/// `<Response>`.
pub const DOCUMENT_BYTES: usize =
    r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#.len();
/// Bytes of an empty `<Message>`.
pub const MESSAGE_BYTES: usize = "<Message></Message>".len();

/// The most bytes `m` adds to the document ([`render`] may write fewer:
/// it drops characters XML forbids).
pub fn message_bytes(m: &Outgoing) -> usize {
    MESSAGE_BYTES
        + m.body
            .as_deref()
            .map_or(0, |b| "<Body></Body>".len() + escaped_len(b))
        + m.media.iter().map(|u| media_bytes(u)).sum::<usize>()
}

/// The most bytes a `<Media>` of `url` adds to a message.
pub fn media_bytes(url: &str) -> usize {
    "<Media></Media>".len() + escaped_len(url)
}

/// `text`'s length once escaped, at most (every character quick-xml may
/// escape counted as escaped).
fn escaped_len(text: &str) -> usize {
    text.len()
        + text
            .bytes()
            .map(|b| match b {
                b'&' => 4,
                b'<' | b'>' => 3,
                b'"' | b'\'' => 5,
                _ => 0,
            })
            .sum::<usize>()
}

fn text_element(w: &mut Writer<Vec<u8>>, name: &str, text: &str) -> std::io::Result<()> {
    let clean = xml_chars(text);
    w.create_element(name)
        .write_text_content(BytesText::new(&clean))
        .map(drop)
}

/// `text` without the characters XML 1.0 does not allow.
fn xml_chars(text: &str) -> std::borrow::Cow<'_, str> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
    };
    if text.chars().all(allowed) {
        text.into()
    } else {
        text.chars()
            .filter(|&c| allowed(c))
            .collect::<String>()
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declaration_is_the_one_quick_xml_writes() {
        let mut w = Writer::new(Vec::new());
        w.write_event(quick_xml::events::Event::Decl(
            quick_xml::events::BytesDecl::new("1.0", Some("UTF-8"), None),
        ))
        .unwrap();
        assert_eq!(w.into_inner(), DECLARATION.as_bytes());
    }

    fn msg(body: Option<&str>, media: Option<&str>) -> Outgoing {
        Outgoing {
            body: body.map(Into::into),
            media: media.into_iter().map(Into::into).collect(),
        }
    }

    #[test]
    fn the_size_bounds_hold_and_are_exact_for_plain_text() {
        let plain = Outgoing {
            body: Some("Q - A".into()),
            media: vec!["https://x/1".into(), "https://x/2".into()],
        };
        let exact = render(std::slice::from_ref(&plain)).len() - DECLARATION.len();
        assert_eq!(
            exact,
            DOCUMENT_BYTES - DECLARATION.len() + message_bytes(&plain)
        );
        let escaped = Outgoing {
            body: Some("a & b < c \"d\" 'e' \u{1}".into()),
            media: vec!["https://x/?a=1&b=<2>".into()],
        };
        let bound = DOCUMENT_BYTES + message_bytes(&escaped);
        assert!(render(&[escaped]).len() <= bound);
    }

    #[test]
    fn documents() {
        let cases = [
            (vec![], "<Response/>"),
            (
                vec![msg(Some("hi"), None)],
                "<Response><Message><Body>hi</Body></Message></Response>",
            ),
            (
                vec![Outgoing {
                    body: None,
                    media: vec!["https://x/1".into(), "https://x/2?a=1&b=2".into()],
                }],
                "<Response><Message><Media>https://x/1</Media><Media>https://x/2?a=1&amp;b=2</Media></Message></Response>",
            ),
            (
                vec![msg(Some("Q - A"), Some("https://cataas.com/cat"))],
                "<Response><Message><Body>Q - A</Body><Media>https://cataas.com/cat</Media></Message></Response>",
            ),
            (
                vec![
                    msg(None, Some("https://x/1")),
                    msg(None, Some("https://x/2")),
                ],
                "<Response><Message><Media>https://x/1</Media></Message><Message><Media>https://x/2</Media></Message></Response>",
            ),
            (
                vec![msg(
                    Some(r#"Tom & "Jerry" <3 'x'"#),
                    Some("https://x/?a=1&b=2"),
                )],
                "<Response><Message><Body>Tom &amp; &quot;Jerry&quot; &lt;3 &apos;x&apos;</Body><Media>https://x/?a=1&amp;b=2</Media></Message></Response>",
            ),
            (
                vec![msg(Some("bell\u{7}nul\u{0}\nline\ttab\u{FFFF}é🐈"), None)],
                "<Response><Message><Body>bellnul\nline\ttabé🐈</Body></Message></Response>",
            ),
            (
                vec![msg(Some("]]> <!-- <![CDATA[x]]>"), None)],
                "<Response><Message><Body>]]&gt; &lt;!-- &lt;![CDATA[x]]&gt;</Body></Message></Response>",
            ),
        ];
        for (messages, expected) in cases {
            assert_eq!(
                render(&messages),
                format!("{DECLARATION}{expected}"),
                "{messages:?}"
            );
        }
    }
}
