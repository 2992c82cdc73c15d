//! Log lines on their way to stdout: one buffer per thread that logs.
//!
//! Appending a line touches only the calling thread's buffer, so proxy
//! workers logging a line per request never wait for each other or share a
//! cache line. A buffer that a line would take past its capacity is first
//! written out by its own thread; [`LineBuffers::flush`] (called by a
//! background thread every [`super::logging::LOG_FLUSH_INTERVAL`], and once
//! more at exit) writes out every thread's lines. Writes to the output are
//! whole buffers of whole lines, one at a time, so lines never interleave,
//! even on a pipe.
//!
//! Lines of one thread keep their order; lines of different threads appear in
//! the order their buffers were written (within a flush interval of when they
//! were logged).

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing_subscriber::fmt::MakeWriter;

/// Bytes a thread's buffer holds at most; a line that would not fit makes
/// the thread write the buffer out first.
pub const THREAD_BUFFER_BYTES: usize = 64 * 1024;

/// One thread's lines waiting to be written.
type ThreadLines = Arc<Mutex<Pending>>;

/// A thread's buffered lines, and the allocation its last write freed.
#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    spare: Vec<u8>,
}

impl Pending {
    /// The buffered lines; the spare allocation takes their place.
    fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.lines, std::mem::take(&mut self.spare))
    }

    /// Keeps `written`'s allocation for the next [`Pending::take`], so a busy
    /// thread does not allocate (and free) a buffer for every write.
    fn give_back(&mut self, mut written: Vec<u8>) {
        if self.spare.capacity() == 0 {
            written.clear();
            self.spare = written;
        }
    }
}

/// Per-thread line buffers in front of one output (see the module docs).
///
/// ```
/// use std::io::Write;
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Clone, Default)]
/// struct Out(Arc<Mutex<Vec<u8>>>);
/// impl Write for Out {
///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
///         self.0.lock().unwrap().extend_from_slice(b);
///         Ok(b.len())
///     }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
///
/// let out = Out::default();
/// let lines = signet::telemetry::lines::LineBuffers::new(out.clone(), 1024);
/// lines.append(b"one\n");
/// assert!(out.0.lock().unwrap().is_empty());
/// lines.flush();
/// assert_eq!(&*out.0.lock().unwrap(), b"one\n");
/// ```
#[derive(Clone)]
pub struct LineBuffers(Arc<Shared>);

struct Shared {
    /// Tells this instance's buffers from another's in a thread's list.
    id: usize,
    capacity: usize,
    out: Mutex<Box<dyn Write + Send>>,
    /// Every buffer a thread made for this instance.
    threads: Mutex<Vec<ThreadLines>>,
}

thread_local! {
    /// This thread's buffers, by instance (in practice one: the process's).
    static MINE: RefCell<Vec<(usize, ThreadLines)>> = const { RefCell::new(Vec::new()) };
}

/// Locks `m`; a panic while it was held leaves usable bytes behind.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LineBuffers {
    /// Buffers in front of `out`; each thread writes its buffer out rather
    /// than let it grow past `capacity` bytes.
    pub fn new(out: impl Write + Send + 'static, capacity: usize) -> Self {
        static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
        Self(Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            capacity,
            out: Mutex::new(Box::new(out)),
            threads: Mutex::new(Vec::new()),
        }))
    }

    /// Adds `lines` (whole lines) to this thread's buffer, after writing out
    /// what it holds if `lines` would not fit.
    pub fn append(&self, lines: &[u8]) {
        let appended = MINE.try_with(|mine| {
            let mut mine = mine.borrow_mut();
            let at = self.thread_buffer(&mut mine);
            let buffer = &mine[at].1;
            let mut pending = lock(buffer);
            // Written before it would outgrow its capacity, so its
            // allocation stays within it (unless one line is longer).
            if !pending.lines.is_empty() && pending.lines.len() + lines.len() > self.0.capacity {
                let full = pending.take();
                // Not locked while waiting for the output (a flush holds the
                // output while it locks each buffer); empty meanwhile, so a
                // flush cannot write anything of this thread's before `full`.
                drop(pending);
                self.write_out(&full);
                pending = lock(buffer);
                pending.give_back(full);
            }
            pending.lines.extend_from_slice(lines);
        });
        if appended.is_err() {
            // The thread is exiting and its buffers are gone: write directly.
            self.write_out(lines);
        }
    }

    /// Writes out every thread's buffered lines, and forgets the buffers of
    /// threads that have ended once they are empty.
    pub fn flush(&self) {
        let threads = {
            let mut threads = lock(&self.0.threads);
            // A buffer only this list holds belongs to a thread that ended.
            threads.retain(|t| Arc::strong_count(t) > 1 || !lock(t).lines.is_empty());
            threads.clone()
        };
        // The output stays locked from taking a thread's lines until they
        // are written, so a thread whose buffer fills meanwhile cannot write
        // its newer lines first.
        let mut out = lock(&self.0.out);
        for thread in threads {
            let lines = {
                let mut pending = lock(&thread);
                if pending.lines.is_empty() {
                    continue;
                }
                pending.take()
            };
            write_to(&mut out, &lines);
            lock(&thread).give_back(lines);
        }
    }

    /// Where this thread's buffer for this instance is in `mine`; made and
    /// registered on first use.
    fn thread_buffer(&self, mine: &mut Vec<(usize, ThreadLines)>) -> usize {
        if let Some(at) = mine.iter().position(|(id, _)| *id == self.0.id) {
            return at;
        }
        // Buffers of dropped instances are held by this list alone.
        mine.retain(|(_, buffer)| Arc::strong_count(buffer) > 1);
        let buffer = ThreadLines::default();
        lock(&self.0.threads).push(buffer.clone());
        mine.push((self.0.id, buffer));
        mine.len() - 1
    }

    fn write_out(&self, lines: &[u8]) {
        write_to(&mut lock(&self.0.out), lines);
    }
}

fn write_to(out: &mut Box<dyn Write + Send>, lines: &[u8]) {
    // A failed write to the log output has nowhere to be reported.
    let _ = out.write_all(lines);
    let _ = out.flush();
}

/// One log event's writer: what it writes goes into the thread's buffer.
pub struct LineWriter<'a>(&'a LineBuffers);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        // Written out by the flusher or when the buffer fills; an event never
        // waits for the output.
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LineBuffers {
    type Writer = LineWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that records each write separately.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Writes {
        fn all(&self) -> Vec<u8> {
            lock(&self.0).concat()
        }
        fn count(&self) -> usize {
            lock(&self.0).len()
        }
    }

    #[test]
    fn holds_lines_until_flushed() {
        let out = Writes::default();
        let lines = LineBuffers::new(out.clone(), 1024);
        lines.append(b"a\n");
        lines.append(b"b\n");
        assert_eq!(out.count(), 0);
        lines.flush();
        assert_eq!(out.all(), b"a\nb\n");
        assert_eq!(out.count(), 1, "one write for the thread's lines");
        lines.flush();
        assert_eq!(out.count(), 1, "nothing left to write");
    }

    #[test]
    fn a_thread_writes_its_buffer_when_the_next_line_would_not_fit() {
        let out = Writes::default();
        let lines = LineBuffers::new(out.clone(), 10);
        lines.append(b"1234\n");
        lines.append(b"5678\n");
        assert_eq!(out.count(), 0, "10 bytes fit");
        lines.append(b"9\n");
        assert_eq!(out.all(), b"1234\n5678\n");
        let threads = lock(&lines.0.threads).clone();
        {
            let pending = lock(&threads[0]);
            assert_eq!(pending.lines, b"9\n");
            // The written buffer's allocation is kept for the next one, and
            // no buffer grows past the capacity.
            assert!((10..=16).contains(&pending.spare.capacity()));
        }
        // A line longer than the capacity still goes out whole.
        lines.append(b"a line of 24 characters\n");
        lines.flush();
        assert_eq!(out.all(), b"1234\n5678\n9\na line of 24 characters\n");
    }

    #[test]
    fn lines_of_many_threads_arrive_whole_and_in_thread_order() {
        let out = Writes::default();
        let lines = LineBuffers::new(out.clone(), 256);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flusher = {
            let (lines, done) = (lines.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    lines.flush();
                }
            })
        };
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        lines.append(format!("thread {t} line {i:04}\n").as_bytes());
                        if i % 97 == 0 {
                            lines.flush();
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        flusher.join().unwrap();
        // The threads have ended; their last lines are still written.
        lines.flush();
        let text = String::from_utf8(out.all()).unwrap();
        for t in 0..4 {
            let seen: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("thread {t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(seen, (0..500).collect::<Vec<_>>(), "thread {t}");
        }
        assert_eq!(text.lines().count(), 2000);
        // Every write holds whole lines only.
        assert!(lock(&out.0).iter().all(|w| w.ends_with(b"\n")));
        // Ended threads' buffers are forgotten once written.
        lines.flush();
        assert_eq!(lock(&lines.0.threads).len(), 0);
    }

    #[test]
    fn instances_keep_separate_buffers_on_one_thread() {
        let (a_out, b_out) = (Writes::default(), Writes::default());
        let a = LineBuffers::new(a_out.clone(), 1024);
        let b = LineBuffers::new(b_out.clone(), 1024);
        a.append(b"to a\n");
        b.append(b"to b\n");
        a.flush();
        b.flush();
        assert_eq!(a_out.all(), b"to a\n");
        assert_eq!(b_out.all(), b"to b\n");
    }

    #[test]
    fn events_written_through_tracing_reach_the_output() {
        let out = Writes::default();
        let lines = LineBuffers::new(out.clone(), 1024);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || tracing::warn!("hello lines"));
        assert_eq!(out.count(), 0);
        lines.flush();
        let text = String::from_utf8(out.all()).unwrap();
        assert!(
            text.contains("hello lines") && text.ends_with('\n'),
            "{text}"
        );
    }
}
