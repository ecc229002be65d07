//! A link to one other node: a lazily (re)connected client connection that
//! carries internal requests, and what the last heartbeat said about the node.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canhazdb_core::internal::{InternalReply, InternalRequest, Member, INTERNAL_COMMAND};

use crate::client::Client;
use crate::tls::NodeTls;

/// How long one internal request may take before the peer counts as failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting (with the TLS handshake, if any) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// When a request (a client's, or a repair holding a lock) must be done by:
/// the calls made for it wait no longer than what is left, so a request
/// meeting several silent peers one after another is still answered in time.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Deadline(Instant::now() + budget)
    }

    pub fn has_passed(&self) -> bool {
        Instant::now() >= self.0
    }

    /// `limit`, or less if the deadline comes first; and whether it does.
    fn bound(deadline: Option<Deadline>, limit: Duration) -> (Duration, bool) {
        match deadline {
            Some(Deadline(at)) => {
                let left = at.saturating_duration_since(Instant::now());
                (left.min(limit), left < limit)
            }
            None => (limit, false),
        }
    }
}

/// How this node opens connections to its peers: plain TCP, or TLS with its
/// node certificate (read anew on each connect, so a reload applies).
#[derive(Clone, Default)]
pub struct Dialer {
    tls: Option<Arc<NodeTls>>,
}

impl Dialer {
    pub fn new(tls: Option<Arc<NodeTls>>) -> Self {
        Dialer { tls }
    }

    /// Connects with a zero linger time: when this node gives up on a
    /// connection (a request timed out, the peer looked gone), closing it
    /// resets it and drops whatever the kernel still had to send. Closed
    /// the usual way, the socket keeps retransmitting its unsent requests
    /// with growing backoff, and after a partition heals a write this node
    /// counted as missed (and recorded a repair for) could still arrive
    /// and be applied, seconds after later writes: a POST's StoreReplica
    /// landing after a DELETE of the same document brought it back.
    async fn connect(&self, address: &str) -> Result<Client, crate::client::Error> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_zero_linger()?;
        let connector = self.tls.as_ref().map(|tls| tls.connector());
        Client::over_tcp(stream, connector.as_ref().map(|connector| (address, connector))).await
    }
}

/// Why an internal request to a peer failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("node {0} is unreachable: {1}")]
    Unreachable(String, String),
    #[error("node {node} answered status {code}: {message}")]
    Failed { node: String, code: u8, message: String },
    /// The request's [`Deadline`] came before the answer: that says nothing
    /// about the peer, which is not marked unreachable for it.
    #[error("node {0} did not answer before the request's deadline")]
    OutOfTime(String),
}

/// One other node, as this node sees it.
pub struct Peer {
    /// Name and address. The name is empty for a `--join` address whose node
    /// has not said who it is yet.
    member: Mutex<Member>,
    dialer: Dialer,
    connection: tokio::sync::Mutex<Option<Client>>,
    /// When connecting last failed: callers that queued behind that attempt
    /// fail with it instead of each waiting out a connect of their own.
    connect_failed_at: Mutex<Option<Instant>>,
    /// The last heartbeat was answered.
    reachable: AtomicBool,
    /// The node said it serves clients.
    healthy: AtomicBool,
    raft_initialized: AtomicBool,
    /// Times the peer went from reachable to unreachable.
    contact_losses: AtomicU64,
    last_answer: Mutex<Option<Instant>>,
    /// When this node started to know the peer.
    known_since: Instant,
}

impl Peer {
    pub fn new(member: Member, dialer: Dialer) -> Peer {
        Peer {
            member: Mutex::new(member),
            dialer,
            connection: tokio::sync::Mutex::new(None),
            connect_failed_at: Mutex::new(None),
            reachable: AtomicBool::new(false),
            healthy: AtomicBool::new(false),
            raft_initialized: AtomicBool::new(false),
            contact_losses: AtomicU64::new(0),
            last_answer: Mutex::new(None),
            known_since: Instant::now(),
        }
    }

    pub fn member(&self) -> Member {
        self.member.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn name(&self) -> String {
        self.member().name
    }

    pub fn set_member(&self, member: Member) {
        *self.member.lock().unwrap_or_else(|p| p.into_inner()) = member;
    }

    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    /// Reachable and healthy: its replicas may answer reads.
    pub fn is_serving(&self) -> bool {
        self.is_reachable() && self.healthy.load(Ordering::Acquire)
    }

    pub fn raft_initialized(&self) -> bool {
        self.raft_initialized.load(Ordering::Acquire)
    }

    pub fn is_connected(&self) -> bool {
        self.connection
            .try_lock()
            .map(|connection| connection.as_ref().is_some_and(|client| !client.is_closed()))
            .unwrap_or(true)
    }

    /// Records what a heartbeat answered.
    pub fn observe(&self, healthy: bool, raft_initialized: bool) {
        self.reachable.store(true, Ordering::Release);
        self.healthy.store(healthy, Ordering::Release);
        self.raft_initialized.store(raft_initialized, Ordering::Release);
        *self.last_answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Marks the peer unreachable (its heartbeat or a request failed). When
    /// it was reachable until now, this node lost contact with it: writes it
    /// coordinates from now on may miss this node (see [`Peer::contact_losses`]).
    pub fn mark_unreachable(&self) {
        if self.reachable.swap(false, Ordering::AcqRel) {
            self.contact_losses.fetch_add(1, Ordering::AcqRel);
        }
        self.healthy.store(false, Ordering::Release);
    }

    /// How often this node lost contact with the peer.
    pub fn contact_losses(&self) -> u64 {
        self.contact_losses.load(Ordering::Acquire)
    }

    /// Time since the peer last answered (or, if it never did, since this
    /// node learned of it).
    pub fn silent_for(&self) -> Duration {
        self.last_answer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(self.known_since)
            .elapsed()
    }

    async fn client(&self, deadline: Option<Deadline>) -> Result<Client, PeerError> {
        let asked_at = Instant::now();
        let mut connection = self.connection.lock().await;
        if let Some(client) = connection.as_ref().filter(|client| !client.is_closed()) {
            return Ok(client.clone());
        }
        let member = self.member();
        let unreachable = |reason: String| PeerError::Unreachable(member.address.clone(), reason);
        let failed_at = *self.connect_failed_at.lock().unwrap_or_else(|p| p.into_inner());
        if failed_at.is_some_and(|failed_at| failed_at >= asked_at) {
            return Err(unreachable("connecting failed just now".into()));
        }
        let (wait, cut_short) = Deadline::bound(deadline, CONNECT_TIMEOUT);
        let connected = match tokio::time::timeout(wait, self.dialer.connect(&member.address)).await {
            Err(_) if cut_short => return Err(PeerError::OutOfTime(member.name)),
            Err(_) => Err(unreachable("connect timed out".into())),
            Ok(connected) => connected.map_err(|error| unreachable(error.to_string())),
        };
        match connected {
            Ok(client) => {
                *connection = Some(client.clone());
                Ok(client)
            }
            Err(error) => {
                *self.connect_failed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                Err(error)
            }
        }
    }

    /// Sends an internal request and waits (bounded) for its reply.
    pub async fn call(&self, request: &InternalRequest) -> Result<InternalReply, PeerError> {
        self.call_with_timeout(request, CALL_TIMEOUT).await
    }

    /// [`Peer::call`] for a client's request: waits no longer than `deadline`.
    pub async fn call_before(
        &self,
        request: &InternalRequest,
        deadline: Deadline,
    ) -> Result<InternalReply, PeerError> {
        self.call_bounded(request, CALL_TIMEOUT, Some(deadline)).await
    }

    pub async fn call_with_timeout(
        &self,
        request: &InternalRequest,
        timeout: Duration,
    ) -> Result<InternalReply, PeerError> {
        self.call_bounded(request, timeout, None).await
    }

    async fn call_bounded(
        &self,
        request: &InternalRequest,
        timeout: Duration,
        deadline: Option<Deadline>,
    ) -> Result<InternalReply, PeerError> {
        let result = self.try_call(request, timeout, deadline).await;
        if let Err(PeerError::Unreachable(..)) = &result {
            self.mark_unreachable();
            let stale = self.connection.lock().await.take();
            if let Some(client) = stale {
                // Bounded: a driver stuck on a full socket must not hold us.
                let _ = tokio::time::timeout(CONNECT_TIMEOUT, client.close()).await;
            }
        }
        result
    }

    async fn try_call(
        &self,
        request: &InternalRequest,
        timeout: Duration,
        deadline: Option<Deadline>,
    ) -> Result<InternalReply, PeerError> {
        let client = self.client(deadline).await?;
        let address = self.member().address;
        let (wait, cut_short) = Deadline::bound(deadline, timeout);
        let reply = match tokio::time::timeout(
            wait,
            client.request_raw(INTERNAL_COMMAND, request.encode_payload()),
        )
        .await
        {
            Err(_) if cut_short => return Err(PeerError::OutOfTime(self.name())),
            Err(_) => return Err(PeerError::Unreachable(address, "request timed out".into())),
            Ok(reply) => reply.map_err(|error| PeerError::Unreachable(address.clone(), error.to_string()))?,
        };
        let (code, reply) = reply;
        InternalReply::from_reply(code, reply).map_err(|(code, message)| PeerError::Failed {
            node: self.name(),
            code,
            message,
        })
    }

    /// Drops the connection (the peer left, or the node shuts down).
    pub async fn disconnect(&self) {
        let connection = self.connection.lock().await.take();
        if let Some(client) = connection {
            let _ = tokio::time::timeout(CONNECT_TIMEOUT, client.close()).await;
        }
        self.mark_unreachable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_connection_given_up_is_reset_not_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let dialer = Dialer::default();
        let (client, accepted) = tokio::join!(dialer.connect(&address), listener.accept());
        let (client, (mut other_end, _)) = (client.expect("connect"), accepted.expect("accept"));
        client.close().await;
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), other_end.read(&mut buffer))
            .await
            .expect("the other end learns of the close");
        // A graceful close reads as the end of the stream (Ok(0)); a reset
        // means the kernel dropped anything left to send.
        let error = read.expect_err("reset, not a clean end of stream");
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    }
}
