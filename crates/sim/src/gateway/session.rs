//! A session channel's life: the PTY and environment asked for before it, then the shell,
//! command or sftp server it runs (on a PTY, or with pipes: stdout as data, stderr as extended
//! data) with what the app's login scripts print around it, the exit status and the close. A
//! login the gateway denied gets its message instead.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use russh::server::{Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tracing::{info, info_span, warn, Instrument};

use super::container::{container_env, platform_view, scratch_dir, sftp_server, shell, Chatter};
use super::Connection;
use crate::model;

#[derive(Default)]
pub(super) struct SessionChannel {
    pub(super) channel: Option<Channel<Msg>>,
    pub(super) pty: Option<PtyRequest>,
    pub(super) env: Vec<(String, String)>,
    pub(super) resize: Option<Arc<Mutex<Box<dyn portable_pty::MasterPty + Send>>>>,
}

#[derive(Debug, Clone)]
pub(super) struct PtyRequest {
    pub(super) term: String,
    pub(super) cols: u16,
    pub(super) rows: u16,
}

/// A session channel at the moment it asks to run something.
struct Requested {
    channel: Channel<Msg>,
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
}

/// What a session channel runs.
pub(super) enum Program {
    Shell,
    Command(String),
    Sftp,
}

impl Connection {
    /// The channel of a session request, with the PTY and environment asked for before it.
    fn take_channel(&mut self, id: ChannelId) -> Option<Requested> {
        let slot = self.channels.get_mut(&id)?;
        Some(Requested {
            channel: slot.channel.take()?,
            pty: slot.pty.clone(),
            env: std::mem::take(&mut slot.env),
        })
    }

    /// Starts what a session channel asked for, or answers with the login's denial.
    pub(super) async fn start(
        &mut self,
        id: ChannelId,
        program: Program,
        session: &mut Session,
    ) -> anyhow::Result<()> {
        let Some(login) = self.login.clone() else {
            session.channel_failure(id)?;
            return Ok(());
        };
        let Some(Requested {
            channel,
            pty,
            env: client_env,
        }) = self.take_channel(id)
        else {
            session.channel_failure(id)?;
            return Ok(());
        };
        session.channel_success(id)?;
        let (read, write) = channel.split();
        if let Some(message) = login.denial {
            info!(user = %login.ssh_user, "refusing session: {message}");
            tokio::spawn(async move {
                let _ = write
                    .extended_data_bytes(1, format!("{message}\r\n").into_bytes())
                    .await;
                // No exit status: ssh reports its own failure (255), as against the real
                // gateway, so that clients tell the refusal from a remote command's status.
                let _ = write.eof().await;
                let _ = write.close().await;
            });
            return Ok(());
        }
        let fixture = self.state.fixture();
        let Some(container) = model::resolve_user(&fixture, &login.ssh_user) else {
            finish(&write, 255).await;
            return Ok(());
        };
        let dir = scratch_dir(&self.state.scratch_dir, &container);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            warn!(dir = %dir.display(), error = %e, "cannot create the app's scratch directory");
            finish(&write, 255).await;
            return Ok(());
        }
        let mut env = container_env(&container, &dir);
        // Later entries win (the PATH with the stand-ins first replaces the plain one).
        env.extend(platform_view(
            &container,
            &dir,
            &self.state.scratch_dir,
            &self.state.backends,
        ));
        env.extend(client_env);
        let pty = pty.filter(|_| login.permit_pty);
        let chatter = match program {
            Program::Sftp => Chatter::default(),
            Program::Shell => Chatter::new(&container, true, pty.is_some()),
            Program::Command(_) => Chatter::new(&container, false, pty.is_some()),
        };
        let span = info_span!("ssh_session", user = %login.ssh_user, user_id = %login.user_id);
        match (pty, program) {
            (Some(pty), Program::Shell) => {
                self.spawn_pty(id, read, write, pty, None, env, dir, chatter, span)
            }
            (Some(pty), Program::Command(cmd)) => {
                self.spawn_pty(id, read, write, pty, Some(cmd), env, dir, chatter, span)
            }
            (_, program) => {
                let mut command = match program {
                    Program::Sftp => match sftp_server() {
                        Some(path) => Command::new(path),
                        None => {
                            let _ = write
                                .extended_data_bytes(
                                    1,
                                    b"sftp-server is not installed on this machine\r\n".to_vec(),
                                )
                                .await;
                            finish(&write, 127).await;
                            return Ok(());
                        }
                    },
                    Program::Command(cmd) => {
                        let mut c = Command::new(shell());
                        c.arg("-c").arg(cmd);
                        c
                    }
                    Program::Shell => Command::new(shell()),
                };
                command.current_dir(&dir).env_clear().envs(env);
                let gone = self.presence.gone();
                tokio::spawn(run_piped(command, read, write, chatter, gone).instrument(span));
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_pty(
        &mut self,
        id: ChannelId,
        read: ChannelReadHalf,
        write: ChannelWriteHalf<Msg>,
        pty: PtyRequest,
        command: Option<String>,
        env: Vec<(String, String)>,
        dir: PathBuf,
        chatter: Chatter,
        span: tracing::Span,
    ) {
        let system = portable_pty::native_pty_system();
        let pair = match system.openpty(portable_pty::PtySize {
            rows: pty.rows.max(1),
            cols: pty.cols.max(1),
            pixel_width: 0,
            pixel_height: 0,
        }) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot open a pty");
                tokio::spawn(async move { finish(&write, 255).await });
                return;
            }
        };
        let mut builder = portable_pty::CommandBuilder::new(shell());
        match command {
            Some(cmd) => {
                builder.arg("-c");
                builder.arg(cmd);
            }
            None => {
                builder.args(["--noprofile", "--norc", "-i"]);
            }
        }
        builder.cwd(&dir);
        builder.env_clear();
        for (k, v) in env {
            builder.env(k, v);
        }
        builder.env("TERM", &pty.term);
        let spawned = pair.slave.spawn_command(builder);
        drop(pair.slave);
        let (mut child, reader, writer) = match (
            spawned,
            pair.master.try_clone_reader(),
            pair.master.take_writer(),
        ) {
            (Ok(c), Ok(r), Ok(w)) => (c, r, w),
            _ => {
                warn!("cannot start a shell on the pty");
                tokio::spawn(async move { finish(&write, 255).await });
                return;
            }
        };
        // Hangs up the shell (SIGHUP, as a closed terminal would) when the channel or the
        // connection goes: the reader thread's copy of the master keeps the PTY open otherwise.
        let mut hang_up = child.clone_killer();
        let gone = self.presence.gone();
        let master = Arc::new(Mutex::new(pair.master));
        if let Some(slot) = self.channels.get_mut(&id) {
            slot.resize = Some(master.clone());
        }
        // Output: a blocking reader thread feeds an async writer.
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(32);
        std::thread::spawn(move || {
            let mut reader = reader;
            let mut buf = [0u8; 8192];
            loop {
                match std::io::Read::read(&mut reader, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out_tx.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        // Input: channel data goes to the pty from a blocking writer thread.
        let (in_tx, in_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut writer = writer;
            while let Ok(data) = in_rx.recv() {
                if std::io::Write::write_all(&mut writer, &data).is_err() {
                    break;
                }
                let _ = std::io::Write::flush(&mut writer);
            }
        });
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel::<u32>();
        std::thread::spawn(move || {
            let code = child.wait().map(|s| s.exit_code()).unwrap_or(255);
            let _ = exit_tx.send(code);
        });
        tokio::spawn(
            async move {
                if !chatter.before.is_empty() {
                    let _ = write.data_bytes(chatter.before).await;
                }
                let input = forward_input(read, move |data| in_tx.send(data).is_ok());
                let output = async {
                    while let Some(chunk) = out_rx.recv().await {
                        if write.data_bytes(chunk).await.is_err() {
                            break;
                        }
                    }
                };
                // Output flows while the shell runs; the reader ends once the last process
                // holding the pty closes it.
                let exit = async {
                    let (code, ()) = tokio::join!(exit_rx, output);
                    code.unwrap_or(255)
                };
                let code = tokio::select! {
                    code = exit => code,
                    _ = input => {
                        let _ = hang_up.kill();
                        255
                    }
                    () = gone => {
                        let _ = hang_up.kill();
                        return;
                    }
                };
                drop(master);
                if !chatter.after.is_empty() {
                    let _ = write.data_bytes(chatter.after).await;
                }
                finish(&write, code).await;
            }
            .instrument(span),
        );
    }
}

/// Copies channel input into `sink` until the client closes the channel; returns on close
/// (EOF on a pty is kept as Ctrl-D would be, so closing input does not end the session).
async fn forward_input(mut read: ChannelReadHalf, sink: impl Fn(Vec<u8>) -> bool) {
    while let Some(msg) = read.wait().await {
        match msg {
            ChannelMsg::Data { data } if !sink(data.to_vec()) => break,
            ChannelMsg::Close => return,
            _ => {}
        }
    }
    // The channel is gone: wait forever so that the caller's exit branch wins if it can.
    std::future::pending::<()>().await
}

async fn finish(write: &ChannelWriteHalf<Msg>, code: u32) {
    let _ = write.exit_status(code).await;
    let _ = write.eof().await;
    let _ = write.close().await;
}

/// Runs a program with pipes: stdin from the channel, stdout as data, stderr as extended data,
/// with the container's chatter on stdout before and after the program's own output.
async fn run_piped(
    mut command: Command,
    mut read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    chatter: Chatter,
    gone: impl std::future::Future<Output = ()>,
) {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = write
                .extended_data_bytes(1, format!("cannot start the command: {e}\r\n").into_bytes())
                .await;
            finish(&write, 127).await;
            return;
        }
    };
    // Written before the program's output is read, so it comes first whatever the program
    // prints meanwhile.
    if !chatter.before.is_empty() {
        let _ = write.data_bytes(chatter.before).await;
    }
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let input = async {
        while let Some(msg) = read.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    if let Some(s) = stdin.as_mut() {
                        if s.write_all(&data).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                ChannelMsg::Eof => stdin = None,
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    };
    let outputs = async {
        tokio::join!(pump(stdout, &write, None), pump(stderr, &write, Some(1)));
    };
    let status = async {
        outputs.await;
        child.wait().await
    };
    tokio::pin!(status);
    let status = tokio::select! {
        s = &mut status => s,
        _ = input => {
            // The client closed the channel: stop the command.
            return;
        }
        () = gone => return,
    };
    let code = match status {
        Ok(s) => s.code().map(|c| c as u32).unwrap_or(255),
        Err(_) => 255,
    };
    if !chatter.after.is_empty() {
        let _ = write.data_bytes(chatter.after).await;
    }
    finish(&write, code).await;
}

async fn pump(
    stream: Option<impl AsyncRead + Unpin>,
    write: &ChannelWriteHalf<Msg>,
    ext: Option<u32>,
) {
    let Some(mut stream) = stream else { return };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let chunk = buf[..n].to_vec();
                let sent = match ext {
                    Some(code) => write.extended_data_bytes(code, chunk).await,
                    None => write.data_bytes(chunk).await,
                };
                if sent.is_err() {
                    return;
                }
            }
        }
    }
}
