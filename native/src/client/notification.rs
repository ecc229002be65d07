//! One pushed change notification, as the application sees it.

use canhazdb_core::notify::parse_notify_path;

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
