//! The write side of a connection to a gateway, as the SSH session sees it: writes never wait
//! for the socket while there is room in a bounded queue, so the session goes on reading.
//!
//! russh's session loop stops reading while it waits to write. When both ends of a busy
//! connection do that at once (a thousand tunnelled connections pushing data both ways fill
//! both sockets' buffers), neither ever reads again. Here what the socket cannot take at once
//! goes to a queue that a task of its own drains, so the session keeps reading (and so the
//! peer keeps draining) while its output waits; the queue is bounded, which keeps the
//! session's own backpressure for a peer that stops reading altogether.
//!
//! While nothing is queued, a write goes straight to the socket; only what the socket refuses
//! is copied, once, into the queue, which the task then hands to the socket as it is. The
//! session and the task use two buffers in turn, so that a busy connection allocates nothing
//! once they have grown. (A `tokio::io::duplex` pipe with a buffered pump did the same with two
//! more copies of every byte sent.)

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// How much output may wait before the session waits to write more.
pub const OUTBOX: usize = 1024 * 1024;

/// The session's side: an `AsyncWrite` over the socket and its queue.
pub struct Outbox {
    shared: Arc<Shared>,
}

struct Shared {
    socket: OwnedWriteHalf,
    queue: Mutex<Queue>,
    /// Wakes the task that drains the queue.
    work: Notify,
}

#[derive(Default)]
struct Queue {
    /// Bytes not yet handed to the socket, in order.
    waiting: Vec<u8>,
    /// Bytes the draining task took and is writing.
    writing: usize,
    /// The session is done: drain, then shut the socket down.
    closing: bool,
    /// The socket failed: every later write says so.
    failed: Option<io::ErrorKind>,
    /// The session, waiting for room.
    blocked: Option<Waker>,
}

impl Outbox {
    /// Takes over a socket's write half; a task of its own writes what waits.
    pub fn new(socket: OwnedWriteHalf) -> Outbox {
        let shared = Arc::new(Shared {
            socket,
            queue: Mutex::new(Queue::default()),
            work: Notify::new(),
        });
        tokio::spawn(drain(shared.clone()));
        Outbox { shared }
    }
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves a consistent queue: nothing is half-updated.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes what the session queued until the session is done with it (or the socket fails).
/// The socket's sending side is shut down when the last of the task and the session lets go
/// of it (dropping a write half does that).
async fn drain(shared: Arc<Shared>) {
    // What the task is writing: the queue's buffer of a moment ago, whose place in the queue
    // the previous one (emptied) took.
    let mut sending = Vec::new();
    loop {
        {
            let mut q = shared.queue();
            if q.waiting.is_empty() {
                if q.closing {
                    return;
                }
            } else {
                std::mem::swap(&mut q.waiting, &mut sending);
                q.writing = sending.len();
            }
        }
        if sending.is_empty() {
            // notify_one stores a permit when no one waits: a wake-up between the check above
            // and this wait is not lost.
            shared.work.notified().await;
            continue;
        }
        let written = write_all(&shared.socket, &sending).await;
        sending.clear();
        let mut q = shared.queue();
        q.writing = 0;
        if let Err(e) = &written {
            q.failed = Some(e.kind());
        }
        if let Some(session) = q.blocked.take() {
            session.wake();
        }
        if written.is_err() {
            return;
        }
    }
}

async fn write_all(socket: &OwnedWriteHalf, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        socket.writable().await?;
        match socket.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl AsyncWrite for Outbox {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let shared = &self.shared;
        let mut q = shared.queue();
        if let Some(kind) = q.failed {
            return Poll::Ready(Err(kind.into()));
        }
        if q.waiting.is_empty() && q.writing == 0 {
            // Nothing waits: straight to the socket, no copy.
            match shared.socket.try_write(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let room = OUTBOX.saturating_sub(q.waiting.len() + q.writing);
        if room == 0 {
            q.blocked = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(buf.len());
        q.waiting
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        drop(q);
        shared.work.notify_one();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // What waits is written by the task as soon as the socket takes it.
        match self.shared.queue().failed {
            Some(kind) => Poll::Ready(Err(kind.into())),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.queue().closing = true;
        self.shared.work.notify_one();
        Poll::Ready(Ok(()))
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.shared.queue().closing = true;
        self.shared.work.notify_one();
    }
}
