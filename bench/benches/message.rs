//! The host's own work for one message, no plugin called: the webhook form
//! decoded and read into an [`Inbound`], and an answer merged and written
//! as TwiML. What every message pays on top of its plugins' calls (HTTP,
//! the log line and metrics aside), measured apart from the HTTP harness,
//! whose run-to-run noise on a small VM is larger than these costs.
//!
//!     cargo bench -p wasmbot-bench --bench message

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use wasmbot::merge::{self, Channel};
use wasmbot::message::{Inbound, Params, Reply};
use wasmbot::twiml;

/// The server's allocator (`host/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The form the shared harness posts for "quote and a cat please"
/// (`shared/bench/wrk/twilio.lua`): Twilio's WhatsApp webhook fields,
/// escapes included.
const FORM: &[u8] = b"SmsMessageSid=SM0123456789abcdef0123456789abcdef&NumMedia=0\
&ProfileName=Bench+User&WaId=14155238886&SmsSid=SM0123456789abcdef0123456789abcdef\
&SmsStatus=received&Body=quote+and+a+cat+please&To=whatsapp%3A%2B14155550123\
&NumSegments=1&MessageSid=SM0123456789abcdef0123456789abcdef\
&AccountSid=AC0123456789abcdef0123456789abcdef&From=whatsapp%3A%2B14155238886\
&ApiVersion=2010-04-01";

fn message(c: &mut Criterion) {
    let mut group = c.benchmark_group("one message, host work");
    group.bench_function("form decoded", |b| {
        b.iter(|| Params::parse(black_box(FORM)))
    });
    group.bench_function("form decoded and read (Inbound)", |b| {
        b.iter(|| Inbound::new(Params::parse(black_box(FORM))))
    });
    let limits = merge::Limits::default();
    let quote = Reply {
        text: Some("The only way to do great work is to love what you do. - Steve Jobs".into()),
        media: Vec::new(),
    };
    let cat = Reply {
        text: None,
        media: vec!["https://cataas.com/cat".into()],
    };
    group.bench_function("quote and cat merged, TwiML", |b| {
        b.iter(|| {
            let messages = merge::merge(
                [("quote", &quote), ("cat", &cat)],
                Some("Sorry, I did not get that."),
                black_box(&limits),
                Channel::of("whatsapp:+15550001111"),
            );
            twiml::render(&messages)
        })
    });
    group.bench_function("apology, TwiML", |b| {
        b.iter(|| {
            let messages = merge::merge(
                [],
                Some(black_box("Sorry, I did not get that.")),
                &limits,
                Channel::WhatsApp,
            );
            twiml::render(&messages)
        })
    });
    group.finish();
}

criterion_group!(benches, message);
criterion_main!(benches);
