//! What plugins import from the host — `log`, `config` and `http` (and,
//! through [`Egress`], `wasi:http`: see `wasi_http`) — and their stderr,
//! plus the conversions between the bindgen types of each contract version
//! and [`crate::message`]. Each import acts only within the plugin's
//! [`Grant`]; every text a plugin hands to the log is escaped and capped.

use super::instance::Limiter;
use super::{PluginInfo, Setting};
use crate::error::untrusted;
use crate::outbound::{self, HttpError, HttpResponse, Outbound};
use crate::policy::{Grant, PluginId};
use crate::state::StateError;
use crate::trigger::Declared;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What the host functions of one plugin see.
pub(super) struct PluginCtx {
    pub(super) grant: Grant,
    /// `None` while describing: no network then.
    outbound: Option<Outbound>,
    /// The plugin's id, as the memory budget counts it.
    memory_key: Arc<str>,
    /// Where its state is kept; `None` while describing (no state then)
    /// or when the runtime has no store.
    state: Option<Arc<crate::state::Store>>,
}

impl PluginCtx {
    pub(super) fn new(
        grant: Grant,
        outbound: Outbound,
        state: Option<Arc<crate::state::Store>>,
    ) -> Self {
        PluginCtx {
            memory_key: grant.id.as_str().into(),
            grant,
            outbound: Some(outbound),
            state,
        }
    }

    /// For `describe()`: nothing granted.
    pub(super) fn describing() -> Self {
        PluginCtx {
            grant: Grant::none(PluginId::parse("describing").expect("a valid id")),
            outbound: None,
            memory_key: "(describing)".into(),
            state: None,
        }
    }

    pub(super) fn memory_key(&self) -> Arc<str> {
        self.memory_key.clone()
    }

    pub(super) fn id(&self) -> &str {
        self.grant.id.as_str()
    }
}

/// The state of one store: one call of one plugin.
pub(super) struct HostState {
    /// Built at the first WASI call ([`wasi`]): a plugin that makes none
    /// (cat) never pays for it. Built at once when a folder is granted, so
    /// a folder that cannot be opened fails the call.
    pub(super) wasi: Option<WasiCtx>,
    /// The plugin's stderr, whose tail explains a trap.
    pub(super) stderr: StderrTail,
    pub(super) table: ResourceTable,
    pub(super) limiter: Limiter,
    pub(super) ctx: Arc<PluginCtx>,
    /// wasi:http's own state (header size limit).
    pub(super) http: wasmtime_wasi_http::WasiHttpCtx,
    /// The requests of this call, through either HTTP interface.
    pub(super) egress: Egress,
    /// State operations this call has made.
    pub(super) state_ops: u32,
    /// Whether this call has logged the store being unavailable.
    pub(super) state_warned: bool,
    /// How this call may defer its reply; `None`: it may not (describe, a
    /// check, a host with replies later off).
    pub(super) later: Option<crate::later::Defer>,
}

/// The outbound requests of one call. Both HTTP interfaces, the `http`
/// import and `wasi:http`, go through [`Egress::admit`] and the plugin's
/// one [`Outbound`] client: one policy, one request count.
pub(super) struct Egress {
    pub(super) ctx: Arc<PluginCtx>,
    /// Requests admitted so far.
    made: u32,
    /// wasi:http requests of this call in flight at once (the `http`
    /// import holds the guest until it is answered: one at a time).
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
    /// The call's deadline: once the call deferred its reply, a request
    /// may take until then.
    deadline: super::Deadline,
}

/// wasi:http requests one call may have in flight at once: its
/// connections, out of the descriptors the edge leaves to plugins.
const IN_FLIGHT: usize = 2;

impl Egress {
    pub(super) fn new(ctx: Arc<PluginCtx>, deadline: super::Deadline) -> Self {
        Egress {
            ctx,
            made: 0,
            in_flight: None,
            deadline,
        }
    }

    /// The time one exchange may take: the operator's HTTP limit, or, once
    /// the call deferred its reply (a slow API is why), nine tenths of what
    /// is left of the call's time, so that the plugin sees the time-out
    /// and can still answer.
    pub(super) fn time_limit(&self, operator: Duration) -> Duration {
        if self.deadline.is_extended() {
            let left = self
                .deadline
                .get()
                .saturating_duration_since(Instant::now());
            left.mul_f64(0.9)
        } else {
            operator
        }
    }

    /// The permits for this call's concurrent wasi:http requests.
    pub(super) fn in_flight(&mut self) -> Arc<tokio::sync::Semaphore> {
        self.in_flight
            .get_or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)))
            .clone()
    }

    /// The operator's limit on one exchange.
    pub(super) fn operator_limit(&self) -> Duration {
        self.ctx
            .outbound
            .as_ref()
            .map_or(Duration::ZERO, |o| o.limits().timeout)
    }

    /// The plugin's client for one more request, or why there is none.
    pub(super) fn admit(&mut self) -> Result<&Outbound, HttpError> {
        let Some(outbound) = &self.ctx.outbound else {
            return Err(HttpError::Denied("no network while describing".into()));
        };
        let max = outbound.limits().max_requests;
        self.made = self.made.saturating_add(1);
        if self.made > max {
            return Err(HttpError::Denied(format!(
                "limit of {max} requests per message reached"
            )));
        }
        Ok(outbound)
    }
}

/// The log line of one outbound request: its status, or why it failed.
pub(super) fn logged(plugin: &str, started: Instant, outcome: Result<u16, &dyn std::fmt::Display>) {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(status) => tracing::debug!(plugin, status, elapsed_ms, "http"),
        Err(why) => tracing::warn!(
            plugin,
            elapsed_ms,
            "http failed: {}",
            untrusted(&why.to_string(), 300)
        ),
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self
                .wasi
                .get_or_insert_with(|| wasi(&self.ctx, &self.stderr).build()),
            table: &mut self.table,
        }
    }
}

/// A call's WASI context, folder aside. Deny by default: no environment,
/// arguments, files or sockets, except what the operator granted.
pub(super) fn wasi(ctx: &PluginCtx, stderr: &StderrTail) -> wasmtime_wasi::WasiCtxBuilder {
    let mut wasi = WasiCtx::builder();
    wasi.stderr(stderr.clone());
    for (name, value) in &ctx.grant.env {
        wasi.env(name, value);
    }
    wasi
}

impl HostState {
    fn log(&self, level: tracing::Level, message: &str) {
        use tracing::Level;
        let plugin = self.ctx.id();
        let message = untrusted(message, 2000);
        match level {
            Level::TRACE => tracing::trace!(plugin, "{message}"),
            Level::DEBUG => tracing::debug!(plugin, "{message}"),
            Level::INFO => tracing::info!(plugin, "{message}"),
            Level::WARN => tracing::warn!(plugin, "{message}"),
            Level::ERROR => tracing::error!(plugin, "{message}"),
        }
    }

    fn setting(&self, key: &str) -> Option<String> {
        self.ctx
            .grant
            .settings
            .get(&key.to_ascii_lowercase())
            .cloned()
    }

    /// One outbound request within the plugin's grant and limits.
    async fn send(&mut self, request: outbound::HttpRequest) -> Result<HttpResponse, HttpError> {
        let started = Instant::now();
        let limit = self.egress.time_limit(self.egress.operator_limit());
        let result = match self.egress.admit() {
            Ok(outbound) => outbound.send_for(request, limit).await,
            Err(e) => Err(e),
        };
        let outcome = result.as_ref().map(|r| r.status);
        logged(self.ctx.id(), started, outcome.map_err(|e| e as _));
        result
    }
}

impl HostState {
    /// The store for one more state operation of this call, or why there
    /// is none.
    fn state(&mut self) -> Result<Arc<crate::state::Store>, StateError> {
        let Some(store) = &self.ctx.state else {
            return Err(StateError::Unavailable(
                "no state while describing, or none configured".into(),
            ));
        };
        let max = store.limits().max_ops;
        self.state_ops = self.state_ops.saturating_add(1);
        if self.state_ops > max {
            return Err(StateError::TooManyOperations(max));
        }
        Ok(store.clone())
    }
}

/// `state`: the plugin's keys, under its id. Only the 0.2 contract has it.
mod state_v0_2 {
    use super::super::bindings::v0_2::wasmbot::plugin::state as wit;
    use super::{HostState, StateError};
    use std::sync::Arc;
    use std::time::Duration;

    fn error(e: StateError) -> wit::Error {
        match e {
            StateError::Invalid(s) => wit::Error::Invalid(s),
            StateError::TooLarge(n) => wit::Error::TooLarge(n),
            StateError::Full(s) => wit::Error::Full(s),
            StateError::TooManyOperations(n) => wit::Error::TooManyOperations(n),
            StateError::NotANumber => wit::Error::NotANumber,
            StateError::Unavailable(s) => wit::Error::Unavailable(s),
        }
    }

    impl HostState {
        /// Runs one state operation, logging what a plugin cannot help
        /// (the store down) for the operator.
        async fn stateful<T, F>(
            &mut self,
            op: impl FnOnce(Arc<crate::state::Store>, String) -> F,
        ) -> Result<T, wit::Error>
        where
            F: Future<Output = Result<T, StateError>>,
        {
            let plugin = self.ctx.id().to_owned();
            let store = self.state().map_err(error)?;
            let result = op(store, plugin.clone()).await;
            if let Err(StateError::Unavailable(why)) = &result
                && !self.state_warned
            {
                // Once per call: a plugin retrying in a loop does not
                // flood the log.
                self.state_warned = true;
                tracing::warn!(plugin, "state unavailable: {why}");
            }
            result.map_err(error)
        }
    }

    impl wit::Host for HostState {
        async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, wit::Error> {
            self.stateful(|s, p| async move { s.get(&p, &key).await })
                .await
        }

        async fn set(
            &mut self,
            key: String,
            value: Vec<u8>,
            ttl_ms: Option<u64>,
        ) -> Result<(), wit::Error> {
            let ttl = ttl_ms.map(Duration::from_millis);
            self.stateful(|s, p| async move { s.set(&p, &key, value, ttl).await })
                .await
        }

        async fn delete(&mut self, key: String) -> Result<bool, wit::Error> {
            self.stateful(|s, p| async move { s.delete(&p, &key).await })
                .await
        }

        async fn increment(&mut self, key: String, delta: i64) -> Result<i64, wit::Error> {
            self.stateful(|s, p| async move { s.increment(&p, &key, delta).await })
                .await
        }

        async fn keys(
            &mut self,
            prefix: String,
            after: Option<String>,
        ) -> Result<Vec<String>, wit::Error> {
            let page = self
                .stateful(|s, p| async move { s.keys(&p, &prefix, after.as_deref()).await })
                .await?;
            // A page is one operation per 100 keys, at least one (which
            // `stateful` counted).
            let extra = u32::try_from((page.len() / 100).saturating_sub(1)).unwrap_or(u32::MAX);
            self.state_ops = self.state_ops.saturating_add(extra);
            Ok(page)
        }
    }
}

/// `later`: replies sent after the webhook's time limit. Only the 0.2
/// contract has it.
mod later_v0_2 {
    use super::super::bindings::v0_2::wasmbot::plugin::later as wit;
    use super::HostState;
    use crate::later::DeferError;

    impl wit::Host for HostState {
        async fn defer(&mut self, interim: Option<String>) -> Result<(), wit::Error> {
            let plugin = self.ctx.id();
            let limiter = &mut self.limiter;
            let Some(defer) = &mut self.later else {
                return Err(wit::Error::Unavailable(
                    "replies later are possible only while handling a message, on a host \
                     configured to send them"
                        .into(),
                ));
            };
            match defer.defer(interim, || limiter.defer()) {
                Ok(()) => {
                    tracing::debug!(plugin, "reply deferred");
                    Ok(())
                }
                Err(DeferError::Busy) => Err(wit::Error::Busy),
                Err(DeferError::Unavailable(why)) => Err(wit::Error::Unavailable(why)),
            }
        }
    }
}

/// The imports and the conversions of one version of the contract: the
/// versions differ in their exports only, so one implementation serves
/// them all.
macro_rules! contract {
    ($version:ident) => {
        pub(super) mod $version {
            use super::super::bindings::$version::wasmbot::plugin as wit;
            use super::{HostState, HttpError, outbound};
            use crate::message::{Inbound, Reply};

            impl wit::types::Host for HostState {}

            impl wit::log::Host for HostState {
                async fn log(&mut self, level: wit::log::Level, message: String) {
                    use wit::log::Level as L;
                    let level = match level {
                        L::Trace => tracing::Level::TRACE,
                        L::Debug => tracing::Level::DEBUG,
                        L::Info => tracing::Level::INFO,
                        L::Warn => tracing::Level::WARN,
                        L::Error => tracing::Level::ERROR,
                    };
                    HostState::log(self, level, &message);
                }
            }

            impl wit::config::Host for HostState {
                async fn get(&mut self, key: String) -> Option<String> {
                    self.setting(&key)
                }
            }

            impl wit::http::Host for HostState {
                async fn send(
                    &mut self,
                    req: wit::http::Request,
                ) -> Result<wit::http::Response, wit::http::Error> {
                    use wit::http::Method as M;
                    let method = match req.method {
                        M::Get => outbound::Method::Get,
                        M::Head => outbound::Method::Head,
                        M::Post => outbound::Method::Post,
                        M::Put => outbound::Method::Put,
                        M::Patch => outbound::Method::Patch,
                        M::Delete => outbound::Method::Delete,
                    };
                    let request = outbound::HttpRequest {
                        method,
                        url: req.url,
                        headers: req.headers,
                        body: req.body,
                    };
                    HostState::send(self, request)
                        .await
                        .map(|r| wit::http::Response {
                            status: r.status,
                            headers: r.headers,
                            body: r.body,
                        })
                        .map_err(|e| match e {
                            HttpError::InvalidUrl(s) => wit::http::Error::InvalidUrl(s),
                            HttpError::Denied(s) => wit::http::Error::Denied(s),
                            HttpError::Timeout => wit::http::Error::Timeout,
                            HttpError::TooLarge => wit::http::Error::TooLarge,
                            HttpError::Transport(s) => wit::http::Error::Transport(s),
                        })
                }
            }

            /// The message as the plugin gets it: borrowed, lowered
            /// straight from the host's copy.
            pub(in crate::runtime) fn message<'a>(
                m: &'a Inbound,
                params: &'a [(&'a str, &'a str)],
                media: &'a [wit::types::Media<'a>],
            ) -> wit::types::Message<'a> {
                wit::types::Message {
                    body: &m.body,
                    from: &m.from,
                    to: &m.to,
                    message_sid: &m.message_sid,
                    account_sid: &m.account_sid,
                    profile_name: m.profile_name.as_deref(),
                    wa_id: m.wa_id.as_deref(),
                    media,
                    params,
                }
            }

            pub(in crate::runtime) fn media(m: &Inbound) -> Vec<wit::types::Media<'_>> {
                m.media
                    .iter()
                    .map(|x| wit::types::Media {
                        url: &x.url,
                        content_type: &x.content_type,
                    })
                    .collect()
            }

            pub(in crate::runtime) fn reply(r: wit::types::Reply) -> Reply {
                Reply {
                    text: r.text,
                    media: r.media,
                }
            }

            /// What `describe` returned, triggers aside.
            pub(in crate::runtime) fn info(i: &mut wit::types::PluginInfo) -> super::PluginInfo {
                super::PluginInfo {
                    name: std::mem::take(&mut i.name),
                    version: std::mem::take(&mut i.version),
                    description: std::mem::take(&mut i.description),
                    priority: i.priority,
                    settings: std::mem::take(&mut i.settings)
                        .into_iter()
                        .map(|s| super::Setting {
                            key: s.key,
                            default: s.default,
                            description: s.description,
                        })
                        .collect(),
                    triggers: Vec::new(),
                }
            }
        }
    };
}

contract!(v0_2);
contract!(v0_1);

/// What a 0.2 plugin declared, with its triggers (not yet checked).
pub(super) fn info_v0_2(
    mut i: super::bindings::v0_2::wasmbot::plugin::types::PluginInfo,
) -> PluginInfo {
    use super::bindings::v0_2::wasmbot::plugin::types::Trigger as T;
    let triggers = std::mem::take(&mut i.triggers)
        .into_iter()
        .map(|t| match t {
            T::Everything => Declared::Everything,
            T::Contains(s) => Declared::Contains(s),
            T::Word(s) => Declared::Word(s),
            T::Prefix(s) => Declared::Prefix(s),
            T::Pattern(s) => Declared::Pattern(s),
            T::Media(s) => Declared::Media(s),
        })
        .collect();
    PluginInfo {
        triggers,
        ..v0_2::info(&mut i)
    }
}

/// What a 0.1 plugin declared: it gets every message.
pub(super) fn info_v0_1(
    mut i: super::bindings::v0_1::wasmbot::plugin::types::PluginInfo,
) -> PluginInfo {
    PluginInfo {
        triggers: vec![Declared::Everything],
        ..v0_1::info(&mut i)
    }
}

/// A plugin's stderr: accepts every write (so a chatty plugin never fails
/// on a full pipe) and keeps the last [`StderrTail::KEEP`] bytes, where a
/// panic message lands just before a trap.
#[derive(Clone, Default)]
pub(super) struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    const KEEP: usize = 4096;

    pub(super) fn text(&self) -> String {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&kept).into_owned()
    }

    /// Appends `buf`, keeping the last [`Self::KEEP`] bytes.
    fn keep(&self, buf: &[u8]) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let tail = &buf[buf.len().saturating_sub(Self::KEEP)..];
        kept.extend_from_slice(tail);
        let excess = kept.len().saturating_sub(Self::KEEP);
        kept.drain(..excess);
    }
}

impl wasmtime_wasi::cli::IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// The tail itself, always ready: the default adapter hands every
    /// write to a task of its own and makes the plugin wait for it, once
    /// per line, behind whatever else runs on its worker thread.
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }
}

impl wasmtime_wasi::p2::OutputStream for StderrTail {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl wasmtime_wasi::p2::Pollable for StderrTail {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.keep(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Every webhook parameter, borrowed, as both contracts lower them.
pub(super) fn params(m: &crate::message::Inbound) -> Vec<(&str, &str)> {
    m.params.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_keeps_the_tail() {
        use tokio::io::AsyncWriteExt as _;
        let tail = StderrTail::default();
        let mut writer = tail.clone();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                for _ in 0..100 {
                    writer.write_all(&[b'x'; 1000]).await.unwrap();
                }
                writer.write_all(b"panicked at the end").await.unwrap();
            });
        let text = tail.text();
        assert_eq!(text.len(), StderrTail::KEEP);
        assert!(text.ends_with("xxpanicked at the end"));
    }
}
