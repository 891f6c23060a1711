//! The way log lines reach stderr: appended to one shared buffer by the
//! thread that formatted them, written out by a background thread in large
//! writes.
//!
//! A line costs its caller a short lock and a copy. Nobody waits on stderr,
//! nothing is allocated per line, and no thread is woken per line: the
//! writer is woken when the buffer stops being empty, then lets lines
//! gather for up to [`GATHER_FOR`] (or until [`WRITE_AT`] bytes wait) and
//! writes them in one call. While stderr is stuck and [`Pending::cap`] bytes
//! already wait, further lines are dropped and counted, never blocked on.
//!
//! Invariant: every line handed to a [`LineSink`] is written exactly once or
//! counted in [`dropped_lines`]; closing writes what is pending, and a line
//! that arrives after closing is written straight through.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer lets lines gather after the first one arrives.
const GATHER_FOR: Duration = Duration::from_millis(10);
/// Pending bytes that make the writer write without waiting out `GATHER_FOR`.
const WRITE_AT: usize = 64 * 1024;
/// Pending bytes beyond which lines are dropped: about 50,000 audit lines,
/// ~1.5 s of a stuck stderr at full load.
pub const DEFAULT_CAP: usize = 16 * 1024 * 1024;

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines dropped since start because stderr could not keep up, or failed.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

struct Pending {
    bytes: Vec<u8>,
    cap: usize,
    closing: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic elsewhere never leaves `Pending` half-updated: every
        // update is a single push or swap.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hands out [`LineSink`]s; the `MakeWriter` of the log subscriber.
#[derive(Clone)]
pub struct LineWriter {
    shared: Arc<Shared>,
}

/// Keeps the writer thread; dropping it writes what is pending and joins.
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread, writing to `out`, with at most `cap` bytes
/// pending.
pub fn spawn(out: impl Write + Send + 'static, cap: usize) -> io::Result<(LineWriter, WriterGuard)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending { bytes: Vec::with_capacity(WRITE_AT * 2), cap, closing: false }),
        wake: Condvar::new(),
    });
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new().name("wa-gateway-log".into()).spawn(move || write_out(&shared, out))?
    };
    Ok((LineWriter { shared: shared.clone() }, WriterGuard { shared, thread: Some(thread) }))
}

fn write_out(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::with_capacity(WRITE_AT * 2);
    loop {
        let closing = {
            let pending = shared.lock();
            let pending = shared.wake.wait_while(pending, |p| p.bytes.is_empty() && !p.closing);
            let pending = pending.unwrap_or_else(PoisonError::into_inner);
            let (mut pending, _) = shared
                .wake
                .wait_timeout_while(pending, GATHER_FOR, |p| p.bytes.len() < WRITE_AT && !p.closing)
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut pending.bytes, &mut batch);
            pending.closing
        };
        if out.write_all(&batch).and_then(|()| out.flush()).is_err() {
            DROPPED.fetch_add(batch.iter().filter(|&&b| b == b'\n').count() as u64, Ordering::Relaxed);
        }
        batch.clear();
        if closing {
            return;
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LineWriter {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> LineSink<'a> {
        LineSink { shared: &self.shared }
    }
}

/// Takes one formatted line per `write` (the subscriber writes each event
/// with one `write_all`).
pub struct LineSink<'a> {
    shared: &'a Shared,
}

impl Write for LineSink<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.shared.lock();
        if pending.closing {
            drop(pending);
            return io::stderr().write_all(line).map(|()| line.len());
        }
        let before = pending.bytes.len();
        if before + line.len() > pending.cap {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        pending.bytes.extend_from_slice(line);
        let after = pending.bytes.len();
        drop(pending);
        // Wake the writer only on the two transitions it waits for.
        if before == 0 || (before < WRITE_AT && after >= WRITE_AT) {
            self.shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>);

    impl Write for Collected {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_once_in_order_and_closing_writes_the_rest() {
        let out = Collected::default();
        let (writer, guard) = spawn(out.clone(), DEFAULT_CAP).unwrap();
        let lines: Vec<String> = (0..10_000).map(|i| format!("line {i}\n")).collect();
        for line in &lines {
            writer.make_writer().write_all(line.as_bytes()).unwrap();
        }
        drop(guard);
        assert_eq!(String::from_utf8(out.0.lock().unwrap().clone()).unwrap(), lines.concat());
    }

    /// Blocks every write until told to go on, like a stderr nobody reads.
    struct Stuck(mpsc::Receiver<()>, Collected);

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.recv();
            self.1.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_output_costs_dropped_lines_and_never_blocks_the_caller() {
        let (go_on, stuck) = mpsc::channel();
        let out = Collected::default();
        let (writer, guard) = spawn(Stuck(stuck, out.clone()), 100).unwrap();
        writer.make_writer().write_all(b"first\n").unwrap();
        // Wait until the writer holds "first" in its stuck write.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !writer.shared.lock().bytes.is_empty() {
            assert!(std::time::Instant::now() < deadline, "the writer never took the first line");
            std::thread::yield_now();
        }
        let before = dropped_lines();
        let line = [[b'x'; 19].as_slice(), b"\n"].concat();
        for _ in 0..10 {
            writer.make_writer().write_all(&line).unwrap();
        }
        // 100 bytes fit 5 lines of 20; the other 5 were dropped and counted.
        assert_eq!(dropped_lines() - before, 5);
        for _ in 0..3 {
            go_on.send(()).unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("first\n"), "{text:?}");
        assert_eq!(text.len(), "first\n".len() + 100, "{text:?}");
    }
}
