//! The task that owns one connection.
//!
//! Client handles never touch the socket: they send a [`Command`] over a
//! channel and await a oneshot reply. The driver owns the stream (TCP or TLS) and the
//! core's sans-IO [`CoreClient`], which allocates correlation ids, encodes
//! frames and decodes replies. Its loop does three things, whichever is ready:
//!
//! * take commands: every command already queued is taken at once and its
//!   frame appended to one write buffer, so a burst of pipelined requests
//!   leaves in one `write` (one syscall, few packets) instead of one each;
//! * write that buffer as far as the socket accepts;
//! * read replies, feed them to the core client and route each event: a
//!   reply to the oneshot waiting for its id, a NOTIFY to the subscriptions
//!   whose pattern matches, READY to whoever waits for it.
//!
//! The loop ends when the socket closes or fails, when [`Command::Close`]
//! arrives, or when every client handle is dropped (the channel closes).
//! Then every request still waiting fails with the reason, and every
//! subscription's `recv` returns `None`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use canhazdb_core::client::{Client as CoreClient, ClientError, Event, Response, Subscriptions};
use canhazdb_core::message::Request;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::command::{Command, ConnectionState, HandlerId, ReplyTo};
use super::error::Error;
use super::notification::Notification;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;
/// Stop taking commands while this much is waiting to be written: the
/// server is not keeping up, and callers should feel it instead of memory
/// growing without bound.
const MAX_PENDING_WRITE: usize = 4 * 1024 * 1024;
/// Commands taken per wake-up before the loop writes and reads again.
const COMMAND_BATCH: usize = 1024;

/// Writes what `buffer` holds (`Some(bytes written)`), or flushes once it
/// is empty (`None`): a TLS stream may hold written bytes back until then.
async fn write_or_flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    buffer: &[u8],
) -> std::io::Result<Option<usize>> {
    if buffer.is_empty() {
        writer.flush().await.map(|()| None)
    } else {
        writer.write(buffer).await.map(Some)
    }
}

/// What to do with the reply to an in-flight request, by correlation id.
enum Waiter {
    Caller(ReplyTo<Response>),
    /// The NOTIFY_ON of a pattern's first subscription; its subscribers
    /// wait in [`Driver::awaiting_notify_on`].
    NotifyOn {
        pattern: String,
    },
    NotifyOff {
        reply: Option<ReplyTo<()>>,
    },
}

/// Why the loop stopped.
enum Exit {
    /// The connection failed or closed; pending requests fail with this.
    Failed(Error),
    /// [`Command::Close`]: pending requests fail with [`Error::Closed`] and
    /// `done` is answered once the socket is closed.
    Close(oneshot::Sender<()>),
}

pub(crate) struct Driver {
    core: CoreClient,
    commands: mpsc::UnboundedReceiver<Command>,
    state: Arc<ConnectionState>,
    waiters: HashMap<u16, Waiter>,
    subscriptions: Subscriptions<HandlerId>,
    handlers: HashMap<HandlerId, (String, mpsc::UnboundedSender<Notification>)>,
    /// Subscribers of a pattern whose NOTIFY_ON has not been answered yet.
    awaiting_notify_on: HashMap<String, Vec<(HandlerId, ReplyTo<()>)>>,
    ready_waiters: Vec<ReplyTo<()>>,
    write_buffer: BytesMut,
}

impl Driver {
    pub(crate) fn new(
        core: CoreClient,
        commands: mpsc::UnboundedReceiver<Command>,
        state: Arc<ConnectionState>,
    ) -> Self {
        Driver {
            core,
            commands,
            state,
            waiters: HashMap::new(),
            subscriptions: Subscriptions::default(),
            handlers: HashMap::new(),
            awaiting_notify_on: HashMap::new(),
            ready_waiters: Vec::new(),
            write_buffer: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// Serves the connection until it ends, then fails whatever still waits.
    pub(crate) async fn run<S>(mut self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin,
    {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let exit = self.serve(&mut reader, &mut writer).await;
        let stream = reader.unsplit(writer);
        // Close the socket before anyone learns the connection is over, so
        // that `Client::close` returning means the server sees the close.
        drop(stream);
        match exit {
            Exit::Failed(reason) => self.shut_down(reason),
            Exit::Close(done) => {
                self.shut_down(Error::Closed);
                let _ = done.send(());
            }
        }
    }

    async fn serve<R, W>(&mut self, reader: &mut R, writer: &mut W) -> Exit
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        // A TLS stream may hold written bytes back until it is flushed.
        let mut unflushed = false;
        let mut read_buffer = vec![0u8; READ_CHUNK];
        loop {
            // Frames queued by anything the last turn did: commands, and
            // replies that lead to requests (a cancelled subscriber's NOTIFY_OFF).
            while let Some(frame) = self.core.poll_transmit() {
                self.write_buffer.extend_from_slice(&frame);
            }
            let accepting = self.write_buffer.len() < MAX_PENDING_WRITE;
            tokio::select! {
                read = reader.read(&mut read_buffer) => match read {
                    Ok(0) => return Exit::Failed(Error::Closed),
                    Ok(n) => {
                        self.core.receive(&read_buffer[..n]);
                        if let Err(error) = self.handle_events() {
                            return Exit::Failed(error);
                        }
                    }
                    Err(error) => return Exit::Failed(error.into()),
                },
                out = write_or_flush(writer, &self.write_buffer), if unflushed || !self.write_buffer.is_empty() => match out {
                    Ok(Some(0)) => return Exit::Failed(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                    Ok(Some(n)) => {
                        self.write_buffer.advance(n);
                        unflushed = true;
                    }
                    Ok(None) => unflushed = false,
                    Err(error) => return Exit::Failed(error.into()),
                },
                command = self.commands.recv(), if accepting => {
                    // `None`: every handle is gone, nobody can wait for anything.
                    let Some(command) = command else { return Exit::Failed(Error::Closed) };
                    if let Some(exit) = self.take_commands(command) {
                        return exit;
                    }
                }
            }
        }
    }

    /// Handles `first` and every command already queued behind it.
    fn take_commands(&mut self, first: Command) -> Option<Exit> {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(command) = next {
            if let Some(exit) = self.handle_command(command) {
                return Some(exit);
            }
            taken += 1;
            next = if taken < COMMAND_BATCH {
                self.commands.try_recv().ok()
            } else {
                None
            };
        }
        None
    }

    fn handle_command(&mut self, command: Command) -> Option<Exit> {
        match command {
            Command::Request { request, reply } => {
                if let Err((error, Waiter::Caller(reply))) =
                    self.send_request(&request, Waiter::Caller(reply))
                {
                    let _ = reply.send(Err(error));
                }
            }
            Command::RequestRaw {
                command,
                payload,
                reply,
            } => match self.core.request_raw(command, payload) {
                Ok(id) => {
                    self.waiters.insert(id, Waiter::Caller(reply));
                }
                Err(error) => {
                    let _ = reply.send(Err(error.into()));
                }
            },
            Command::Subscribe {
                pattern,
                handler,
                notifications,
                reply,
            } => self.subscribe(pattern, handler, notifications, reply),
            Command::Unsubscribe {
                pattern,
                handler,
                reply,
            } => self.unsubscribe(&pattern, handler, reply),
            Command::WaitReady { reply } => {
                if self.core.is_ready() {
                    let _ = reply.send(Ok(()));
                } else {
                    self.ready_waiters.push(reply);
                }
            }
            Command::Close { done } => return Some(Exit::Close(done)),
        }
        None
    }

    /// Queues `request`'s frame and remembers who wants the reply; on
    /// failure (all correlation ids in use) gives the waiter back.
    fn send_request(&mut self, request: &Request, waiter: Waiter) -> Result<(), (Error, Waiter)> {
        match self.core.request(request) {
            Ok(id) => {
                self.waiters.insert(id, waiter);
                Ok(())
            }
            Err(error) => Err((error.into(), waiter)),
        }
    }

    fn subscribe(
        &mut self,
        pattern: String,
        handler: HandlerId,
        notifications: mpsc::UnboundedSender<Notification>,
        reply: ReplyTo<()>,
    ) {
        let first = match self.subscriptions.add(&pattern, handler) {
            Ok(first) => first,
            Err(error) => {
                let message = format!("invalid notify pattern {pattern:?}: {error}");
                let _ = reply.send(Err(Error::InvalidArgument(message)));
                return;
            }
        };
        self.handlers.insert(handler, (pattern.clone(), notifications));
        if first {
            let request = Request::NotifyOn {
                pattern: pattern.clone(),
            };
            let waiter = Waiter::NotifyOn {
                pattern: pattern.clone(),
            };
            match self.send_request(&request, waiter) {
                Ok(()) => {
                    self.awaiting_notify_on.insert(pattern, vec![(handler, reply)]);
                }
                Err((error, _)) => {
                    self.subscriptions.remove(&pattern, Some(&handler));
                    self.handlers.remove(&handler);
                    let _ = reply.send(Err(error));
                }
            }
        } else if let Some(waiting) = self.awaiting_notify_on.get_mut(&pattern) {
            // The server has not confirmed the pattern yet: confirm together.
            waiting.push((handler, reply));
        } else {
            self.confirm_subscription(&pattern, handler, reply);
        }
    }

    /// Tells the subscriber it is registered; if it stopped waiting (its
    /// `on` call was cancelled) nobody will ever drop its subscription, so
    /// unregister it now.
    fn confirm_subscription(&mut self, pattern: &str, handler: HandlerId, reply: ReplyTo<()>) {
        if reply.send(Ok(())).is_err() {
            self.unsubscribe(pattern, handler, None);
        }
    }

    fn unsubscribe(&mut self, pattern: &str, handler: HandlerId, reply: Option<ReplyTo<()>>) {
        self.handlers.remove(&handler);
        if !self.subscriptions.remove(pattern, Some(&handler)) {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        }
        // The pattern's last handler is gone. Anyone still waiting for its
        // NOTIFY_ON was cancelled (its handler is gone too): forget them.
        self.awaiting_notify_on.remove(pattern);
        let request = Request::NotifyOff {
            pattern: pattern.to_owned(),
        };
        if let Err((error, Waiter::NotifyOff { reply: Some(reply) })) =
            self.send_request(&request, Waiter::NotifyOff { reply })
        {
            let _ = reply.send(Err(error));
        }
    }

    /// Routes every event the core client produced.
    fn handle_events(&mut self) -> Result<(), Error> {
        while let Some(event) = self.core.poll_event() {
            match event {
                Event::Ready => {
                    self.state.ready.store(true, Ordering::Release);
                    for reply in self.ready_waiters.drain(..) {
                        let _ = reply.send(Ok(()));
                    }
                }
                Event::Reply { id, result } => self.handle_reply(id, result),
                Event::Notify { path } => self.dispatch_notification(&path),
                Event::Fatal { message } => return Err(Error::Protocol(message)),
            }
        }
        Ok(())
    }

    fn handle_reply(&mut self, id: u16, result: Result<Response, ClientError>) {
        let Some(waiter) = self.waiters.remove(&id) else {
            return;
        };
        let result = result.map_err(Error::from);
        match waiter {
            // A caller that stopped waiting (its future was dropped) is fine.
            Waiter::Caller(reply) => {
                let _ = reply.send(result);
            }
            Waiter::NotifyOff { reply } => {
                if let Some(reply) = reply {
                    let _ = reply.send(result.map(|_| ()));
                }
            }
            Waiter::NotifyOn { pattern } => {
                let subscribers = self.awaiting_notify_on.remove(&pattern).unwrap_or_default();
                match result {
                    Ok(_) => {
                        for (handler, reply) in subscribers {
                            self.confirm_subscription(&pattern, handler, reply);
                        }
                    }
                    Err(error) => {
                        // The server refused the pattern: none of its handlers stay.
                        self.subscriptions.remove(&pattern, None);
                        self.handlers
                            .retain(|_, (handler_pattern, _)| *handler_pattern != pattern);
                        for (_, reply) in subscribers {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        }
    }

    fn dispatch_notification(&self, path: &str) {
        for (pattern, handler) in self.subscriptions.dispatch(path) {
            if let Some((_, notifications)) = self.handlers.get(&handler) {
                // A receiver dropped a moment ago: its Unsubscribe is on its way.
                let _ = notifications.send(Notification::new(path, pattern));
            }
        }
    }

    /// Fails everything that waits on this connection with `reason`.
    fn shut_down(&mut self, reason: Error) {
        self.state.closed.store(true, Ordering::Release);
        self.state.ready.store(false, Ordering::Release);
        // Refuse new commands, then fail the ones that made it into the queue.
        self.commands.close();
        self.core.disconnected();
        while self.core.poll_event().is_some() {}
        for (_, waiter) in self.waiters.drain() {
            match waiter {
                Waiter::Caller(reply) => {
                    let _ = reply.send(Err(reason.clone()));
                }
                Waiter::NotifyOff { reply: Some(reply) } => {
                    let _ = reply.send(Err(reason.clone()));
                }
                Waiter::NotifyOff { reply: None } | Waiter::NotifyOn { .. } => {}
            }
        }
        for (_, reply) in self
            .awaiting_notify_on
            .drain()
            .flat_map(|(_, subscribers)| subscribers)
        {
            let _ = reply.send(Err(reason.clone()));
        }
        for reply in self.ready_waiters.drain(..) {
            let _ = reply.send(Err(reason.clone()));
        }
        // Dropping the senders ends every subscription's `recv`.
        self.handlers.clear();
        while let Ok(command) = self.commands.try_recv() {
            fail_command(command, &reason);
        }
    }
}

/// Answers a command that arrived after the connection ended.
fn fail_command(command: Command, reason: &Error) {
    match command {
        Command::Request { reply, .. } | Command::RequestRaw { reply, .. } => {
            let _ = reply.send(Err(reason.clone()));
        }
        Command::Subscribe { reply, .. } | Command::WaitReady { reply } => {
            let _ = reply.send(Err(reason.clone()));
        }
        Command::Unsubscribe { reply, .. } => {
            // The connection is gone, so the registration is gone: done.
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
        }
        Command::Close { done } => {
            let _ = done.send(());
        }
    }
}
