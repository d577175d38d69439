//! What plugins import from the host — `log`, `config` and `http` — and
//! their stderr, plus the conversions between the bindgen types and
//! [`crate::message`]. Each import acts only within the plugin's
//! [`Grant`]; every text a plugin hands to the log is escaped and capped.

use super::bindings::wasmbot::plugin as wit;
use super::instance::Limiter;
use super::{PluginInfo, Setting};
use crate::error::untrusted;
use crate::message::Inbound;
use crate::outbound::{self, HttpError, Outbound};
use crate::policy::{Grant, PluginId};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What the host functions of one plugin see.
pub(super) struct PluginCtx {
    pub(super) grant: Grant,
    /// `None` while describing: no network then.
    outbound: Option<Outbound>,
    /// The plugin's id, as the memory budget counts it.
    memory_key: Arc<str>,
}

impl PluginCtx {
    pub(super) fn new(grant: Grant, outbound: Outbound) -> Self {
        PluginCtx {
            memory_key: grant.id.as_str().into(),
            grant,
            outbound: Some(outbound),
        }
    }

    /// For `describe()`: nothing granted.
    pub(super) fn describing() -> Self {
        PluginCtx {
            grant: Grant::none(PluginId::parse("describing").expect("a valid id")),
            outbound: None,
            memory_key: "(describing)".into(),
        }
    }

    pub(super) fn memory_key(&self) -> Arc<str> {
        self.memory_key.clone()
    }

    fn id(&self) -> &str {
        self.grant.id.as_str()
    }
}

/// The state of one store: one call of one plugin.
pub(super) struct HostState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: Limiter,
    pub(super) ctx: Arc<PluginCtx>,
    /// HTTP requests made in this call.
    pub(super) requests: u32,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::types::Host for HostState {}

impl wit::log::Host for HostState {
    async fn log(&mut self, level: wit::log::Level, message: String) {
        use wit::log::Level;
        let plugin = self.ctx.id();
        let message = untrusted(&message, 2000);
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl wit::config::Host for HostState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.ctx
            .grant
            .settings
            .get(&key.to_ascii_lowercase())
            .cloned()
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
        let started = Instant::now();
        let result = match &self.ctx.outbound {
            None => Err(HttpError::Denied("no network while describing".into())),
            Some(outbound) => {
                let max = outbound.limits().max_requests;
                self.requests = self.requests.saturating_add(1);
                if self.requests > max {
                    Err(HttpError::Denied(format!(
                        "limit of {max} requests per message reached"
                    )))
                } else {
                    outbound.send(request).await
                }
            }
        };
        let plugin = self.ctx.id();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(r) => tracing::debug!(plugin, status = r.status, elapsed_ms, "http"),
            Err(e) => tracing::warn!(
                plugin,
                elapsed_ms,
                "http failed: {}",
                untrusted(&e.to_string(), 300)
            ),
        }
        result
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
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let tail = &buf[buf.len().saturating_sub(Self::KEEP)..];
        kept.extend_from_slice(tail);
        let excess = kept.len().saturating_sub(Self::KEEP);
        kept.drain(..excess);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

pub(super) fn to_wit_message(m: &Inbound) -> wit::types::Message {
    wit::types::Message {
        body: m.body.clone(),
        from: m.from.clone(),
        to: m.to.clone(),
        message_sid: m.message_sid.clone(),
        account_sid: m.account_sid.clone(),
        profile_name: m.profile_name.clone(),
        wa_id: m.wa_id.clone(),
        media: m
            .media
            .iter()
            .map(|x| wit::types::Media {
                url: x.url.clone(),
                content_type: x.content_type.clone(),
            })
            .collect(),
        params: m.params.clone(),
    }
}

pub(super) fn from_wit_info(i: wit::types::PluginInfo) -> PluginInfo {
    PluginInfo {
        name: i.name,
        version: i.version,
        description: i.description,
        priority: i.priority,
        settings: i
            .settings
            .into_iter()
            .map(|s| Setting {
                key: s.key,
                default: s.default,
                description: s.description,
            })
            .collect(),
    }
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
