//! Copying a carried connection's bytes between the local socket and its channel, both ways
//! at once, counting them in the tunnel's counters.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;

use bytes::{Buf, Bytes, BytesMut};
use russh::client;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use super::forward::LiveCounters;

/// The most a tunnelled connection reads from its local side at once: one packet of the size
/// gateways accept (32 KiB for OpenSSH and russh), so that a busy connection's bytes go out in
/// full packets. Two packets' worth (64 KiB) made a thousand connections at once leave the
/// agent holding 16 to 40 MiB more after they closed (the allocator keeps what they used),
/// against 4 to 13 MiB with one.
const READ_CHUNK: usize = 32 * 1024;

/// How many filled read buffers a connection keeps until russh has sent them and they can be
/// used again: 1 MiB, half the window gateways usually give (2 MiB, OpenSSH's and russh's).
const IN_FLIGHT: usize = 32;

/// The most data messages written to the local side with one system call.
const WRITE_BATCH: usize = 32;

/// Copies a local connection to its channel and back until both sides are done.
///
/// Up: what is read is sent as a shared slice of the buffer it was read into, and the buffers
/// are used again once russh has sent them ([`IN_FLIGHT`] of them wait for that), rather than
/// allocated for each read and freed by the session: at the rate of the traffic, that made
/// the allocator give pages back to the system and fault them in again (35,000 page faults per
/// GiB sent, a tenth of the agent's CPU time). An idle connection holds one buffer.
///
/// Down: the data messages already queued behind the one that arrived are written with it, in
/// one system call (a gateway sending small packets made one write each).
///
/// The channel is left open until the gateway closes it (it does once both sides said EOF):
/// russh forgets a channel only when the close it receives is the first one, so closing from
/// this side first would leave the channel's state behind in the session for as long as the
/// connection lives.
pub(super) async fn pump(
    stream: TcpStream,
    mut rx: russh::ChannelReadHalf,
    tx: russh::ChannelWriteHalf<client::Msg>,
    counters: &LiveCounters,
) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut local_read, mut local_write) = stream.into_split();
    let to_io = |e: russh::Error| io::Error::other(e.to_string());
    let up = async {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        // Filled buffers whose slices russh may still hold, oldest first.
        let mut sent = VecDeque::new();
        loop {
            if buf.capacity() < READ_CHUNK / 4 {
                let full = std::mem::take(&mut buf);
                let reclaimed = sent
                    .front_mut()
                    .is_some_and(|oldest: &mut BytesMut| oldest.try_reclaim(READ_CHUNK));
                buf = if reclaimed {
                    sent.pop_front().unwrap_or_default()
                } else {
                    BytesMut::with_capacity(READ_CHUNK)
                };
                if sent.len() < IN_FLIGHT {
                    sent.push_back(full);
                }
            }
            let n = local_read.read_buf(&mut buf).await?;
            if n == 0 {
                break;
            }
            counters.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
            tx.data_bytes(buf.split().freeze()).await.map_err(to_io)?;
        }
        tx.eof().await.map_err(to_io)
    };
    let down = async {
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        // A message taken while gathering a batch, to be handled next.
        let mut ahead = None;
        loop {
            let msg = match ahead.take() {
                Some(msg) => msg,
                None => rx.wait().await,
            };
            match msg {
                Some(russh::ChannelMsg::Data { data }) => {
                    batch.push(data);
                    while batch.len() < WRITE_BATCH {
                        match queued(&mut rx).await {
                            Some(Some(russh::ChannelMsg::Data { data })) => batch.push(data),
                            Some(other) => {
                                ahead = Some(other);
                                break;
                            }
                            None => break,
                        }
                    }
                    let n = write_all_chunks(&mut local_write, &mut batch).await?;
                    counters.bytes_received.fetch_add(n, Ordering::Relaxed);
                }
                Some(russh::ChannelMsg::Eof) => local_write.shutdown().await?,
                Some(russh::ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
        Ok::<_, io::Error>(())
    };
    let copied = tokio::try_join!(up, down).map(|_| ());
    if copied.is_err() {
        // The local side failed: end the channel from here.
        let _ = tx.close().await;
    }
    copied
}

/// The channel's next message if it is already there, without waiting for one (`Some(None)`
/// when the channel is gone).
async fn queued(rx: &mut russh::ChannelReadHalf) -> Option<Option<russh::ChannelMsg>> {
    use std::future::Future;
    use std::task::Poll;
    let mut next = std::pin::pin!(rx.wait());
    // Receiving is cancel-safe: a message not ready now stays queued for the next wait.
    std::future::poll_fn(|cx| match next.as_mut().poll(cx) {
        Poll::Ready(msg) => Poll::Ready(Some(msg)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Writes every chunk (emptying `chunks`) with as few system calls as the socket takes, and
/// says how many bytes that was.
async fn write_all_chunks(w: &mut OwnedWriteHalf, chunks: &mut Vec<Bytes>) -> io::Result<u64> {
    use tokio::io::AsyncWriteExt;
    let total = chunks.iter().map(|c| c.len() as u64).sum();
    let mut first = 0;
    loop {
        while chunks.get(first).is_some_and(Bytes::is_empty) {
            first += 1;
        }
        let Some(rest) = chunks.get(first..).filter(|rest| !rest.is_empty()) else {
            break;
        };
        let mut slices = [io::IoSlice::new(&[]); WRITE_BATCH];
        for (slice, chunk) in slices.iter_mut().zip(rest) {
            *slice = io::IoSlice::new(chunk);
        }
        let count = rest.len().min(WRITE_BATCH);
        let mut written = w.write_vectored(&slices[..count]).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let Some(chunk) = chunks.get_mut(first) else {
                break;
            };
            let n = written.min(chunk.len());
            chunk.advance(n);
            written -= n;
            if chunk.is_empty() {
                first += 1;
            }
        }
    }
    chunks.clear();
    Ok(total)
}
