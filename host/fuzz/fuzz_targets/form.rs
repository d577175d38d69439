//! Any webhook body: parsing never panics, keeps every `&`-separated pair,
//! decodes each exactly as the `form_urlencoded` crate does, and the
//! message built from it keeps every parameter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmbot::message::{Inbound, Params};

fuzz_target!(|body: &[u8]| {
    let params = Params::parse(body);
    let nonempty = body.split(|b| *b == b'&').filter(|p| !p.is_empty()).count();
    assert_eq!(params.len(), nonempty);
    let decoded: Vec<_> = form_urlencoded::parse(body).collect();
    assert!(
        params
            .iter()
            .eq(decoded.iter().map(|(n, v)| (n.as_ref(), v.as_ref())))
    );
    let msg = Inbound::new(params.clone());
    assert_eq!(msg.params, params);
    assert!(msg.media.len() <= 10);
});
