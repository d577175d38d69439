//! Any webhook body: parsing never panics, keeps every `&`-separated pair,
//! and the message built from it keeps every parameter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmbot::message::Inbound;
use wasmbot::webhook::parse_form;

fuzz_target!(|body: &[u8]| {
    let pairs = parse_form(body);
    let nonempty = body.split(|b| *b == b'&').filter(|p| !p.is_empty()).count();
    assert_eq!(pairs.len(), nonempty);
    let msg = Inbound::from_params(pairs.clone());
    assert_eq!(msg.params, pairs);
    assert!(msg.media.len() <= 10);
});
