//! X-Twilio-Signature on the real router: signed, unsigned, tampered.

use wasmbot::config::Secret;
use wasmbot::signature::sign;
use wasmbot_tests::fixture::*;

const TOKEN: &str = "test-auth-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_correctly_signed_requests_are_served() {
    let bot = Bot::start(&[("cat.wasm", CAT)], |c| {
        c.auth_token = Some(Secret(TOKEN.into()));
    })
    .await;
    let form = whatsapp_form("cat");
    // Without a public URL the host rebuilds it from the Host header.
    let url = format!("http://{}/bot", bot.addr);
    let good = sign(TOKEN, &url, &form);

    let ok = bot.post_form(&form, &[("x-twilio-signature", &good)]).await;
    assert_eq!(ok.twiml(), twiml(&[(None, Some(CAT_URL))]));

    let unsigned = bot.post_form(&form, &[]).await;
    assert_eq!(unsigned.status, 403);
    assert!(unsigned.text.contains("missing X-Twilio-Signature"));

    let mut tampered = form.clone();
    tampered[7].1 = "quote".into();
    assert_eq!(tampered[7].0, "Body");
    let r = bot
        .post_form(&tampered, &[("x-twilio-signature", &good)])
        .await;
    assert_eq!(r.status, 403);
    assert!(r.text.contains("invalid X-Twilio-Signature"));

    let wrong_key = sign("another-token", &url, &form);
    let r = bot
        .post_form(&form, &[("x-twilio-signature", &wrong_key)])
        .await;
    assert_eq!(r.status, 403);

    // An added parameter is signed too.
    let mut extra = form.clone();
    extra.push(("Injected".into(), "1".into()));
    let r = bot
        .post_form(&extra, &[("x-twilio-signature", &good)])
        .await;
    assert_eq!(r.status, 403);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_tunnel_the_public_url_is_what_is_signed() {
    let public = "https://bot.example-tunnel.app";
    let bot = Bot::start(&[("cat.wasm", CAT)], |c| {
        c.auth_token = Some(Secret(TOKEN.into()));
        c.public_url = Some(public.into());
    })
    .await;
    let form = whatsapp_form("cat");
    let path = "/bot?source=whatsapp";
    let signed_public = sign(TOKEN, &format!("{public}{path}"), &form);
    let signed_local = sign(TOKEN, &format!("http://{}{path}", bot.addr), &form);
    let post = |sig: String| {
        let body = form_body(&form);
        let req = bot
            .client
            .post(bot.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", sig)
            .body(body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(signed_public.clone()).await, 200);
    // The port quirk: Twilio may have signed https://host:443/…
    let with_port = sign(
        TOKEN,
        &format!("https://bot.example-tunnel.app:443{path}"),
        &form,
    );
    assert_eq!(post(with_port).await, 200);
    assert_eq!(post(signed_local).await, 403);
    // The query string is signed.
    let without_query = sign(TOKEN, &format!("{public}/bot"), &form);
    assert_eq!(post(without_query).await, 403);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_key_and_body_hash_variants() {
    use wasmbot::signature::{Algorithm, sign_with};
    let bot = Bot::start(&[("cat.wasm", CAT)], |c| {
        c.auth_token = Some(Secret(TOKEN.into()));
        c.shared_keys
            .insert("KS1".into(), Secret("shared-secret".into()));
    })
    .await;
    let form = whatsapp_form("cat");
    let url = format!("http://{}/bot", bot.addr);
    let sha256 = sign_with(Algorithm::HmacSha256, "shared-secret", &url, &form);
    let settings = "key=KS1,algorithm=HMAC_SHA256";
    let status = |headers: Vec<(&'static str, String)>, path: &'static str, body: String| {
        let mut req = bot
            .client
            .post(bot.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let body = form_body(&form);
    let sig = |s: &str| ("x-twilio-signature", s.to_owned());
    let set = |s: &str| ("x-twilio-webhooks-signature-settings", s.to_owned());
    assert_eq!(
        status(vec![sig(&sha256), set(settings)], "/bot", body.clone()).await,
        200
    );
    // The SHA-256 signature is no SHA-1 signature, and vice versa.
    assert_eq!(status(vec![sig(&sha256)], "/bot", body.clone()).await, 403);
    let sha1 = sign(TOKEN, &url, &form);
    assert_eq!(
        status(vec![sig(&sha1), set(settings)], "/bot", body.clone()).await,
        403
    );
    // An unknown key id.
    let unknown = "key=KS2,algorithm=HMAC_SHA256";
    assert_eq!(
        status(vec![sig(&sha256), set(unknown)], "/bot", body.clone()).await,
        403
    );

    // bodySHA256: the URL alone is signed and the body must match.
    let hash: String = {
        use sha2::Digest as _;
        sha2::Sha256::digest(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let path: &'static str = Box::leak(format!("/bot?bodySHA256={hash}").into_boxed_str());
    let url_only = sign(
        TOKEN,
        &format!("http://{}{path}", bot.addr),
        &wasmbot::message::Params::default(),
    );
    assert_eq!(status(vec![sig(&url_only)], path, body.clone()).await, 200);
    let tampered = body.replace("cat", "dog");
    assert_eq!(status(vec![sig(&url_only)], path, tampered).await, 403);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_count_only_when_trusted() {
    let form = whatsapp_form("cat");
    let public = "https://bot.example.org/bot";
    let signed = sign(TOKEN, public, &form);
    let forwarded = [
        ("x-twilio-signature", signed.as_str()),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "bot.example.org"),
    ];
    for (trust, expected) in [(true, 200), (false, 403)] {
        let bot = Bot::start(&[("cat.wasm", CAT)], |c| {
            c.auth_token = Some(Secret(TOKEN.into()));
            c.trust_forwarded = trust;
        })
        .await;
        assert_eq!(
            bot.post_form(&form, &forwarded).await.status,
            expected,
            "trust {trust}"
        );
        bot.stop().await;
    }
}
