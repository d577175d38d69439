//! Any URL, parameters and settings header: canonicalisation ignores order
//! and repeats, signing verifies, nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmbot::signature::{
    Algorithm, body_matches, body_sha256_param, canonical, parse_settings, sign_with, verify_with,
};

fuzz_target!(|input: (String, Vec<(String, String)>, String, Vec<u8>)| {
    let (url, params, header, body) = input;
    let mut reversed = params.clone();
    reversed.reverse();
    assert_eq!(canonical(&url, &params), canonical(&url, &reversed));
    let doubled: Vec<_> = params.iter().chain(&params).cloned().collect();
    assert_eq!(canonical(&url, &params), canonical(&url, &doubled));

    let (_, algorithm) = parse_settings(&header);
    let algorithm = algorithm.unwrap_or(Algorithm::HmacSha1);
    let sig = sign_with(algorithm, &header, &url, &params);
    assert!(verify_with(algorithm, &header, &url, &params, &sig));
    if let Some(hash) = body_sha256_param(&url) {
        let _ = body_matches(&body, &hash);
    }
});
