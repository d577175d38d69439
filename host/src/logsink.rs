//! Where log lines go: formatted on the thread that logs, appended to a
//! shared buffer, and written out in batches by a background thread.
//!
//! A per-message log line must cost the request almost nothing. Handing
//! each line to a writer thread through a channel (`tracing-appender`)
//! wakes that thread for every message, and on two cores its wake-ups and
//! spinning took about a tenth of the throughput. Here a line is one
//! `memcpy` under a mutex; the writer thread is woken only when the buffer
//! goes from empty to not empty, lets lines gather for [`BATCH`], and
//! writes them with one `write`. At idle a line appears within
//! [`BATCH`]; under load there is one write every [`BATCH`].
//!
//! Nothing is lost and nothing grows without bound: when [`LIMIT`] bytes
//! wait (the output is a slow pipe or a stopped terminal), logging
//! threads wait for the writer. Dropping the [`FlushGuard`] writes what is
//! left and stops the thread.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long the writer lets lines gather before writing them.
pub const BATCH: Duration = Duration::from_millis(2);

/// Bytes that may wait to be written before logging waits.
pub const LIMIT: usize = 1 << 20;

/// The `MakeWriter` to give `tracing_subscriber::fmt`. Cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
}

/// Writes what is left and stops the writer thread when dropped; waits
/// for that at most [`FLUSH_WAIT`] (stderr may be a pipe nobody reads).
#[must_use = "dropping the guard stops the log writer"]
pub struct FlushGuard {
    shared: Arc<Shared>,
    finished: std::sync::mpsc::Receiver<()>,
}

/// How long exiting waits for the last lines to be written.
pub const FLUSH_WAIT: Duration = Duration::from_secs(1);

struct Shared {
    state: Mutex<State>,
    /// The writer waits here for lines.
    lines: Condvar,
    /// Logging threads wait here for room.
    room: Condvar,
}

#[derive(Default)]
struct State {
    waiting: Vec<u8>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a valid byte buffer.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LogSink {
    /// Starts the writer thread (named `name`) writing to `out`.
    pub fn spawn(
        out: impl Write + Send + 'static,
        name: &str,
    ) -> std::io::Result<(LogSink, FlushGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            lines: Condvar::new(),
            room: Condvar::new(),
        });
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::Builder::new().name(name.to_owned()).spawn({
            let shared = shared.clone();
            move || {
                write_batches(&shared, out);
                let _ = done.send(());
            }
        })?;
        Ok((
            LogSink {
                shared: shared.clone(),
            },
            FlushGuard { shared, finished },
        ))
    }

    fn append(&self, line: &[u8]) {
        let mut state = self.shared.lock();
        while state.waiting.len() >= LIMIT && !state.closed {
            state = self
                .shared
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.closed {
            return; // after the guard: nobody would write it
        }
        let first = state.waiting.is_empty();
        state.waiting.extend_from_slice(line);
        drop(state);
        if first {
            self.shared.lines.notify_one();
        }
    }
}

fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut writing = Vec::new();
    loop {
        let mut state = shared.lock();
        while state.waiting.is_empty() && !state.closed {
            state = shared
                .lines
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.waiting.is_empty() {
            return; // closed, all written
        }
        if !state.closed && state.waiting.len() < LIMIT / 2 {
            drop(state);
            std::thread::sleep(BATCH);
            state = shared.lock();
        }
        std::mem::swap(&mut state.waiting, &mut writing);
        drop(state);
        shared.room.notify_all();
        // Like any logger, a broken stderr does not stop the server.
        let _ = out.write_all(&writing).and_then(|()| out.flush());
        writing.clear();
        writing.shrink_to(LIMIT);
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.lines.notify_one();
        self.shared.room.notify_all();
        // A writer stuck on a full pipe is left behind: exiting matters more.
        let _ = self.finished.recv_timeout(FLUSH_WAIT);
    }
}

/// One event's writer: `tracing_subscriber::fmt` formats a whole line and
/// writes it at once.
pub struct Line<'a>(&'a LogSink);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing_subscriber::fmt::MakeWriter;

    /// An output that records what it got and how many writes it took;
    /// `stall` holds every write until released.
    #[derive(Clone, Default)]
    struct Out {
        got: Arc<Mutex<Vec<u8>>>,
        writes: Arc<AtomicUsize>,
        stall: Arc<Mutex<()>>,
    }

    impl Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _held = self.stall.lock().unwrap();
            self.got.lock().unwrap().extend_from_slice(buf);
            self.writes.fetch_add(1, Ordering::SeqCst);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log(sink: &LogSink, line: &str) {
        sink.make_writer().write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_few_writes() {
        let out = Out::default();
        let (sink, guard) = LogSink::spawn(out.clone(), "test-log").unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let sink = sink.clone();
                s.spawn(move || {
                    for i in 0..1000 {
                        log(&sink, &format!("thread {t} line {i}\n"));
                    }
                });
            }
        });
        drop(guard);
        let got = String::from_utf8(out.got.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 4000);
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("thread {t} line ")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..1000).collect::<Vec<_>>(), "thread {t}");
        }
        let writes = out.writes.load(Ordering::SeqCst);
        assert!(writes < 4000, "{writes} writes for 4000 lines");
    }

    #[test]
    fn exiting_does_not_wait_for_an_output_that_never_drains() {
        let out = Out::default();
        let stuck = out.stall.clone();
        let _held = stuck.lock().unwrap();
        let (sink, guard) = LogSink::spawn(out, "test-log").unwrap();
        log(&sink, "never written\n");
        std::thread::sleep(BATCH * 5); // the writer is now blocked in write
        let started = std::time::Instant::now();
        drop(guard);
        let waited = started.elapsed();
        assert!(
            waited >= FLUSH_WAIT && waited < FLUSH_WAIT * 3,
            "{waited:?}"
        );
    }

    #[test]
    fn a_lone_line_is_written_without_waiting_for_more() {
        let out = Out::default();
        let (sink, _guard) = LogSink::spawn(out.clone(), "test-log").unwrap();
        log(&sink, "listening\n");
        for _ in 0..500 {
            if out.got.lock().unwrap().as_slice() == b"listening\n" {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("the line was not written within a second");
    }

    #[test]
    fn a_stalled_output_holds_loggers_back_instead_of_losing_lines_or_growing() {
        let out = Out::default();
        let (sink, guard) = LogSink::spawn(out.clone(), "test-log").unwrap();
        // Dropped before the guard if an assertion fails: no hang.
        let stalled = out.stall.lock().unwrap();
        let line = "x".repeat(999) + "\n";
        let logger = std::thread::spawn({
            let sink = sink.clone();
            let line = line.clone();
            move || {
                for _ in 0..3 * LIMIT / line.len() {
                    log(&sink, &line);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(!logger.is_finished(), "the logger should be held back");
        // What waits is bounded: one batch in the writer's hands, at most
        // LIMIT (plus one line) queued behind it.
        assert!(sink.shared.lock().waiting.len() <= LIMIT + line.len());
        drop(stalled);
        logger.join().unwrap();
        drop(guard);
        assert_eq!(
            out.got.lock().unwrap().len(),
            3 * LIMIT / line.len() * line.len()
        );
    }
}
