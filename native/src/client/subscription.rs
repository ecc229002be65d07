//! Change notifications as the application sees them.

use canhazdb_core::notify::parse_notify_path;
use tokio::sync::mpsc;

use super::driver::{Command, HandlerId};

/// One pushed change, `METHOD:/collection/documentId`, as received by one
/// subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The whole path as the server sent it, e.g. `POST:/tests/1f0…`.
    pub path: String,
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    pub collection_id: String,
    pub document_id: String,
    /// The pattern of the subscription that matched it.
    pub pattern: String,
}

impl Notification {
    pub(crate) fn new(path: &str, pattern: &str) -> Self {
        let (method, collection_id, document_id) = split_path(path);
        Notification {
            path: path.to_owned(),
            method: method.to_owned(),
            collection_id: collection_id.to_owned(),
            document_id: document_id.to_owned(),
            pattern: pattern.to_owned(),
        }
    }
}

/// The core's strict parse, falling back to a plain split so that a path
/// with a method this client does not know is still delivered whole.
fn split_path(path: &str) -> (&str, &str, &str) {
    if let Some((method, collection, document)) = parse_notify_path(path) {
        return (method.as_str(), collection, document);
    }
    let (method, rest) = path.split_once(":/").unwrap_or(("", path));
    let (collection, document) = rest.split_once('/').unwrap_or((rest, ""));
    (method, collection, document)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_their_parts() {
        let notification = Notification::new("PATCH:/tests/a/b", "tests");
        assert_eq!(
            (
                notification.method.as_str(),
                notification.collection_id.as_str(),
                notification.document_id.as_str()
            ),
            ("PATCH", "tests", "a/b")
        );
        let odd = Notification::new("MOVE:/x/1", ".*");
        assert_eq!(
            (
                odd.method.as_str(),
                odd.collection_id.as_str(),
                odd.document_id.as_str()
            ),
            ("MOVE", "x", "1")
        );
        assert_eq!(odd.path, "MOVE:/x/1");
    }
}
