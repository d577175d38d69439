//! Any plugin replies, with or without an apology: the merged answer
//! stays within Twilio's limits, is never empty when an apology is set,
//! and renders to well-formed TwiML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmbot::merge::{Channel, Limits, merge};
use wasmbot::message::Reply;
use wasmbot::twiml::render;

fuzz_target!(|input: (bool, bool, Vec<(Option<String>, Vec<String>)>)| {
    let (whatsapp, apologise, replies) = input;
    let apology = apologise.then_some("sorry");
    let channel = if whatsapp {
        Channel::WhatsApp
    } else {
        Channel::Sms
    };
    let replies: Vec<(String, Reply)> = replies
        .into_iter()
        .enumerate()
        .map(|(i, (text, media))| (format!("p{i}"), Reply { text, media }))
        .collect();
    let limits = Limits::default();
    let out = merge(
        replies.iter().map(|(n, r)| (n.as_str(), r)),
        apology,
        &limits,
        channel,
    );
    assert!(out.len() <= limits.max_messages);
    assert!(apology.is_none() || !out.is_empty());
    for m in &out {
        assert!(m.body.is_some() || !m.media.is_empty());
        assert!(m.media.len() <= if whatsapp { 1 } else { limits.max_mms_media });
        if let Some(body) = &m.body {
            assert!(body.chars().count() <= limits.max_body_chars);
        }
    }
    let xml = render(&out);
    assert!(xml.len() <= limits.max_twiml_bytes);
    let mut reader = quick_xml::Reader::from_str(&xml);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("malformed TwiML: {e}\n{xml}"),
        }
    }
});
