//! A subscription: the notifications matching one pattern, until dropped.

use tokio::sync::mpsc;

use super::command::{Command, HandlerId};
use super::notification::Notification;

/// The notifications matching one pattern, from [`Client::on`](super::Client::on).
///
/// Dropping it, or passing it to [`Client::off`](super::Client::off),
/// unregisters it; the server is told (NOTIFY_OFF) when the pattern's last
/// subscription on this connection goes. Notifications queue without bound
/// until [`recv`](Subscription::recv) takes them.
#[derive(Debug)]
pub struct Subscription {
    pattern: String,
    handler: HandlerId,
    notifications: mpsc::UnboundedReceiver<Notification>,
    /// Weak, so that a live subscription does not keep the connection open
    /// after every [`Client`](super::Client) handle is gone. `None` once unregistered.
    commands: Option<mpsc::WeakUnboundedSender<Command>>,
}

impl Subscription {
    pub(crate) fn new(
        pattern: String,
        handler: HandlerId,
        notifications: mpsc::UnboundedReceiver<Notification>,
        commands: mpsc::WeakUnboundedSender<Command>,
    ) -> Self {
        Subscription {
            pattern,
            handler,
            notifications,
            commands: Some(commands),
        }
    }

    /// The next notification; `None` once the connection is closed (after
    /// the notifications that had already arrived).
    pub async fn recv(&mut self) -> Option<Notification> {
        self.notifications.recv().await
    }

    /// A notification that has already arrived, without waiting.
    pub fn try_recv(&mut self) -> Option<Notification> {
        self.notifications.try_recv().ok()
    }

    /// The regex this subscription was registered with.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Takes what unregistering needs, so that `Drop` does nothing more.
    pub(crate) fn detach(&mut self) -> Option<(mpsc::UnboundedSender<Command>, String, HandlerId)> {
        let commands = self.commands.take()?.upgrade()?;
        Some((commands, self.pattern.clone(), self.handler))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some((commands, pattern, handler)) = self.detach() {
            // Fire and forget: nobody waits for the NOTIFY_OFF reply. A send
            // error means the connection is already gone, which unregisters
            // everything anyway.
            let _ = commands.send(Command::Unsubscribe {
                pattern,
                handler,
                reply: None,
            });
        }
    }
}
