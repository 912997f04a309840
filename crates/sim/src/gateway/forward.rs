//! `direct-tcpip`: a channel to one of the app's relationships is carried to the local backend
//! of that service, if the login may forward ports and the address is a relationship.

use std::time::Duration;

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info, info_span, warn, Instrument};

use super::Connection;
use crate::model;

/// How long a forward waits for a service's backend to accept.
const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Connection {
    /// Opens a forward to `host:port`, or refuses it with the reason the client will show.
    pub(super) async fn open_forward(
        &self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        reply: ChannelOpenHandle,
    ) -> anyhow::Result<()> {
        let Some(login) = self.login.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if let Some(message) = login.denial {
            reply
                .reject(ChannelOpenFailure::Other {
                    code: 1,
                    reason: message,
                })
                .await;
            return Ok(());
        }
        if !login.permit_port_forwarding {
            reply
                .reject(ChannelOpenFailure::Other {
                    code: 1,
                    reason: "the certificate does not permit port forwarding".into(),
                })
                .await;
            return Ok(());
        }
        let fixture = self.state.fixture();
        let backend = model::resolve_user(&fixture, &login.ssh_user).and_then(|c| {
            model::endpoints(c.project, c.env, c.app)
                .into_iter()
                .find(|e| {
                    u32::from(e.port) == port
                        && (e.host == host || e.ip == host || e.hostname == host)
                })
                .and_then(|e| self.state.backends.get(&e.service.backend).copied())
        });
        let Some(backend) = backend else {
            info!(user = %login.ssh_user, %host, port, "refused a forward to something that is no relationship");
            reply
                .reject(ChannelOpenFailure::Other {
                    code: 1,
                    reason: format!("{host}:{port} is not a relationship of this app"),
                })
                .await;
            return Ok(());
        };
        let stream = match tokio::time::timeout(
            BACKEND_CONNECT_TIMEOUT,
            TcpStream::connect(backend),
        )
        .await
        {
            Ok(Ok(s)) => s,
            _ => {
                warn!(%host, port, %backend, "the service's backend does not answer");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
                return Ok(());
            }
        };
        reply.accept().await;
        let span = info_span!("forward", user = %login.ssh_user, %host, port);
        // The forward ends with the connection: a backend that waits for its client would
        // otherwise hold it open after the SSH connection is gone.
        let mut gone = self.presence.gone();
        tokio::spawn(
            async move {
                let mut tcp = stream;
                let mut chan = channel.into_stream();
                let copied = tokio::select! {
                    copied = tokio::io::copy_bidirectional(&mut chan, &mut tcp) => Some(copied),
                    () = &mut gone => None,
                };
                match copied {
                    Some(copied) => {
                        debug!(?copied, "forward closed");
                        let _ = chan.shutdown().await;
                    }
                    None => debug!("the connection is gone: forward cut"),
                }
                // Closed before the connection stops counting.
                drop(tcp);
                drop(chan);
                drop(gone);
            }
            .instrument(span),
        );
        Ok(())
    }
}
