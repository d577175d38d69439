//! The HTTP edge below the router: accepts connections and serves them
//! with hyper's HTTP/1 connection builder and hyper-util's Tokio timer,
//! I/O adapter, service adapter and graceful shutdown (the pattern of
//! axum's `serve-with-hyper` example). `axum::serve` sets no timer, so a
//! client that never finishes its headers, or an idle keep-alive
//! connection, was held forever; here every connection is bounded:
//!
//! - **Headers within `header_timeout`** (default 10 s). hyper starts this
//!   timer whenever a connection waits for a request head, so it is also
//!   the idle keep-alive timeout: half-open and idle connections are closed
//!   by the server.
//! - **At most `max_connections` at once.** A connection past the cap is
//!   refused gracefully: answered `503` with `Retry-After` and closed (a
//!   few at a time, with a short header timeout of their own; past that
//!   it is closed at once), so the process never runs out of descriptors
//!   and a flood of idle sockets cannot starve real webhooks for longer
//!   than the header timeout.
//! - **Bodies** are timed (3 s) and read under a budget of their own by the
//!   webhook handler ([`crate::webhook`]); before authentication, this
//!   connection cap is what bounds how many clients can hold anything.
//! - **Shutdown** stops accepting, lets requests in flight finish, closes
//!   idle connections, and returns once no request is being answered
//!   (connections still waiting for a request head are dropped), or after
//!   `shutdown_grace` at the latest.
//!
//! Connections are served by `workers` threads (default: one per CPU),
//! each running a single-threaded Tokio runtime of its own, the model of
//! actix-web and nginx's worker processes: the accept loop hands a new
//! connection to the worker with the fewest open, and everything its
//! messages start (plugin calls, their upstream requests, replies sent
//! later) runs on that worker; a plugin's upstream requests go through
//! that worker's own HTTP client ([`worker`], `outbound`), so their
//! connections are driven there too. Nothing moves between threads on the
//! way, which serves a third more quotes than Tokio's work-stealing runtime did
//! (see the README's Performance). A plugin that computes for long does not
//! hold its worker: guest code yields every epoch tick (10 ms), and the
//! worker polls for I/O before it resumes the plugin. A worker is chosen
//! by the connections it holds, not by the work they started.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};

/// Bounds on connections.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to receive a request's headers; also the idle keep-alive time.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Threads serving connections, each with a runtime of its own.
    pub workers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_connections: default_max_connections(),
            shutdown_grace: Duration::from_secs(15),
            workers: default_workers(),
        }
    }
}

/// One worker per CPU the process may run on.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Connections past the cap that are being answered 503 at once; past
/// this, an extra connection is closed without an answer.
const REFUSING: usize = 64;
/// Time a refused connection gets to send its request head.
const REFUSE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Raises the soft limit of open files to the hard limit (as Go's runtime
/// and nginx do) and returns the soft limit now in force (`u64::MAX`:
/// unlimited).
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Half the open-files limit (the other half is for plugins' outbound
/// connections, plugin files and the cache), at most 10,000, at least 16.
pub fn default_max_connections() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(soft / 2)
        .unwrap_or(usize::MAX)
        .clamp(16, 10_000)
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// the requests in flight (for at most `limits.shutdown_grace`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let mut refuse = http1::Builder::new();
    refuse
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSE_HEADER_TIMEOUT)
        .keep_alive(false);
    let active = Arc::new(AtomicUsize::new(0));
    let mut workers = Workers::start(limits.workers.max(1)).await?;
    let mut warned: Option<Instant> = None;
    let mut refused = 0u64;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    if !is_per_connection(&e) {
                        // Out of descriptors or memory: the pending
                        // connections wait in the backlog meanwhile.
                        tracing::error!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        match open.clone().try_acquire_owned() {
            Ok(permit) => {
                let service = Counted {
                    inner: TowerToHyperService::new(router.clone()),
                    active: active.clone(),
                };
                let (http, watcher) = (http.clone(), graceful.watcher());
                workers.serve(stream, move |stream| async move {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                    drop(permit);
                });
            }
            Err(_) => {
                let io = TokioIo::new(stream);
                refused += 1;
                if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        refused,
                        "connections refused: max_connections are open"
                    );
                    warned = Some(Instant::now());
                    refused = 0;
                }
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    let conn = refuse.serve_connection(io, hyper::service::service_fn(busy));
                    tokio::spawn(async move {
                        let _ = conn.await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop(listener);
    // Done when every connection has closed, or when no request is being
    // answered (connections still waiting for a request head have nothing
    // to lose), or at the grace limit.
    let answered = async {
        loop {
            if active.load(Ordering::Acquire) == 0 {
                // Let the last responses reach the wire.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if active.load(Ordering::Acquire) == 0 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        () = graceful.shutdown() => {}
        () = answered => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(
                "shutdown: requests still open after {:?} are dropped",
                limits.shutdown_grace
            );
        }
    }
    // What is left on the workers (connections waiting for a request
    // head) is dropped with them.
    let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
    Ok(())
}

thread_local! {
    /// Set once, when a worker thread starts.
    static WORKER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The index of the worker thread this runs on (`0..workers`), if it is
/// one: what is per worker beyond the runtime (`outbound`'s clients) is
/// chosen by it.
pub fn worker() -> Option<usize> {
    WORKER.get()
}

/// Marks this thread as worker `i` ([`worker`]).
pub(crate) fn become_worker(i: usize) {
    WORKER.set(Some(i));
}

/// The threads that serve connections.
struct Workers {
    workers: Vec<Worker>,
    /// Where the search for the least busy worker starts: ties go round.
    next: usize,
}

struct Worker {
    runtime: tokio::runtime::Handle,
    /// Connections open on it.
    open: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` workers. Each builds its runtime on its own thread: a
    /// runtime may not be dropped in async code, as one would be if its
    /// thread could not be started.
    async fn start(n: usize) -> std::io::Result<Workers> {
        let mut workers = Workers {
            workers: Vec::with_capacity(n),
            next: 0,
        };
        // Blocking work (files of a granted folder, SQLite) gets as many
        // threads in all as Tokio gives one runtime.
        let blocking = (512 / n).max(8);
        for i in 0..n {
            let (stop, stopped) = oneshot::channel::<()>();
            let (started, handle) = oneshot::channel();
            let thread = std::thread::Builder::new()
                .name(format!("wasmbot-w{i}"))
                .spawn(move || {
                    become_worker(i);
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .max_blocking_threads(blocking)
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = started.send(Err(e));
                            return;
                        }
                    };
                    let _ = started.send(Ok(runtime.handle().clone()));
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                    // A blocking task (a state operation) gets a moment.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })?;
            let runtime = handle
                .await
                .map_err(|_| std::io::Error::other("a worker thread ended at its start"))??;
            workers.workers.push(Worker {
                runtime,
                open: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(workers)
    }

    /// The index of the running worker with the fewest connections open
    /// (a worker counts connections, not the work they started).
    fn least_busy(&mut self) -> Option<usize> {
        let n = self.workers.len();
        let start = self.next;
        self.next = (self.next + 1) % n.max(1);
        (0..n)
            .map(|i| (start + i) % n)
            .filter(|&i| {
                self.workers[i]
                    .thread
                    .as_ref()
                    .is_some_and(|t| !t.is_finished())
            })
            .min_by_key(|&i| self.workers[i].open.load(Ordering::Relaxed))
    }

    /// Hands `stream` to the least busy worker, which runs `serve` with it.
    fn serve<F, Fut>(&mut self, stream: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(at) = self.least_busy() else {
            // No worker runs (none should ever stop before `serve`
            // returns): the connection is served here.
            tokio::spawn(serve(stream));
            return;
        };
        let worker = &self.workers[at];
        // Out of this runtime's reactor and into the worker's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!("handing a connection to a worker: {e}");
                return;
            }
        };
        let open = Open::count(&worker.open);
        worker.runtime.spawn(async move {
            let _open = open;
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(e) => tracing::warn!("a worker taking a connection: {e}"),
            }
        });
    }

    /// Stops the workers and waits for their threads.
    fn stop(mut self) {
        let threads: Vec<_> = self
            .workers
            .iter_mut()
            .filter_map(|worker| worker.thread.take())
            .collect();
        // Dropping stops them.
        drop(self);
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Dropping the senders stops the workers; their threads end on
        // their own.
        for worker in &mut self.workers {
            worker.stop.take();
        }
    }
}

/// One connection counted on a worker while it is open.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn count(open: &Arc<AtomicUsize>) -> Open {
        open.fetch_add(1, Ordering::Relaxed);
        Open(open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A service that counts the requests it is answering.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    active: Arc<AtomicUsize>,
}

/// Holds one count of [`Counted`] while a request is answered.
struct Answering(Arc<AtomicUsize>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, R> hyper::service::Service<R> for Counted<S>
where
    S: hyper::service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, req: R) -> Self::Future {
        self.active.fetch_add(1, Ordering::AcqRel);
        let answering = Answering(self.active.clone());
        let answer = self.inner.call(req);
        Box::pin(async move {
            let _answering = answering;
            answer.await
        })
    }
}

/// The answer on a connection past the cap.
async fn busy(
    _: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<String>, std::convert::Infallible> {
    let mut response = hyper::Response::new("too many connections; retry shortly\n".to_owned());
    *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from_static("1"),
    );
    Ok(response)
}

/// Errors of one connection that failed while being accepted; the
/// listener itself is fine.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One request on `conn`, kept alive; the answer's body.
    async fn get(conn: &mut TcpStream, path: &str) -> String {
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                if body.len() >= length {
                    return body.to_owned();
                }
            }
        }
    }

    /// Each connection is served by one worker thread, new ones go to the
    /// least busy worker, and the workers end with `serve`.
    #[tokio::test]
    async fn connections_are_spread_over_workers_and_stay_on_theirs() {
        let router = Router::new().route(
            "/thread",
            axum::routing::get(|| async {
                std::thread::current().name().unwrap_or("?").to_owned()
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            workers: 2,
            ..Limits::default()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        let mut first = TcpStream::connect(addr).await.unwrap();
        let on_first = get(&mut first, "/thread").await;
        let mut second = TcpStream::connect(addr).await.unwrap();
        let on_second = get(&mut second, "/thread").await;
        assert!(on_first.starts_with("wasmbot-w"), "{on_first}");
        assert!(on_second.starts_with("wasmbot-w"), "{on_second}");
        assert_ne!(on_first, on_second, "the second went to the busy worker");
        for _ in 0..5 {
            assert_eq!(get(&mut first, "/thread").await, on_first);
            assert_eq!(get(&mut second, "/thread").await, on_second);
        }
        // A connection that closed no longer counts: once the server has
        // seen it close, a new one goes to the worker that has none left.
        drop(second);
        let started = Instant::now();
        let mut third = loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut conn = TcpStream::connect(addr).await.unwrap();
            if get(&mut conn, "/thread").await == on_second {
                break conn;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "new connections never went to the idle worker"
            );
        };

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returns")
            .unwrap()
            .unwrap();
        // The workers are gone, and their connections with them.
        let mut buf = [0u8; 16];
        for conn in [&mut first, &mut third] {
            let n = tokio::time::timeout(Duration::from_secs(1), conn.read(&mut buf))
                .await
                .expect("closed")
                .unwrap_or(0);
            assert_eq!(n, 0);
        }
    }

    #[test]
    fn the_least_busy_worker_takes_the_next_connection_and_ties_go_round() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut workers = rt.block_on(Workers::start(3)).unwrap();
        let picks = |workers: &mut Workers| -> Vec<usize> {
            (0..3).map(|_| workers.least_busy().unwrap()).collect()
        };
        assert_eq!(picks(&mut workers), [0, 1, 2], "ties go round");
        workers.workers[0].open.store(2, Ordering::Relaxed);
        workers.workers[2].open.store(1, Ordering::Relaxed);
        assert_eq!(picks(&mut workers), [1, 1, 1]);
        // A worker that stopped takes nothing.
        workers.workers[1].stop.take();
        while !workers.workers[1].thread.as_ref().unwrap().is_finished() {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(picks(&mut workers), [2, 2, 2]);
        workers.stop();
    }
}
