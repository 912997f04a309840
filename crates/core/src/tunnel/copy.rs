//! Copying a carried connection's bytes between the local socket and its channel, both ways
//! at once, counting them in the tunnel's counters.

use std::io;
use std::sync::atomic::Ordering;

use russh::client;
use tokio::net::TcpStream;

use super::forward::LiveCounters;

/// The buffer a tunnelled connection reads its local side into.
const COPY_BUFFER: usize = 16 * 1024;

/// Copies a local connection to its channel and back until both sides are done. Reading
/// into one buffer and sending what was read as a shared slice of it keeps the copy free of
/// per-chunk allocations (the buffer's memory is reused once russh has sent a slice).
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
        let mut buf = bytes::BytesMut::with_capacity(COPY_BUFFER);
        loop {
            if buf.capacity() < COPY_BUFFER / 4 {
                buf.reserve(COPY_BUFFER);
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
        while let Some(msg) = rx.wait().await {
            match msg {
                russh::ChannelMsg::Data { data } => {
                    local_write.write_all(&data).await?;
                    counters
                        .bytes_received
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                russh::ChannelMsg::Eof => local_write.shutdown().await?,
                russh::ChannelMsg::Close => break,
                _ => {}
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
