//! Any plugin replies: the merged answer stays within Twilio's limits and
//! renders to well-formed TwiML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmbot::merge::{Limits, merge};
use wasmbot::message::Reply;
use wasmbot::twiml::render;

fuzz_target!(|replies: Vec<(Option<String>, Vec<String>)>| {
    let replies: Vec<(String, Reply)> = replies
        .into_iter()
        .enumerate()
        .map(|(i, (text, media))| (format!("p{i}"), Reply { text, media }))
        .collect();
    let limits = Limits::default();
    let out = merge(
        replies.iter().map(|(n, r)| (n.as_str(), r)),
        "sorry",
        &limits,
    );
    assert!(!out.is_empty() && out.len() <= limits.max_messages);
    for m in &out {
        assert!(m.body.is_some() || m.media.is_some());
        if let Some(body) = &m.body {
            assert!(body.chars().count() <= limits.max_body_chars);
        }
    }
    let xml = render(&out);
    assert!(xml.len() < 64_000);
    let mut reader = quick_xml::Reader::from_str(&xml);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("malformed TwiML: {e}\n{xml}"),
        }
    }
});
