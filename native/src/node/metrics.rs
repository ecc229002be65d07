//! What the node counts, through the `metrics` facade: requests (by command
//! and status, with their latency), requests in flight, open connections and
//! notify deliveries (storage counts its own, [`crate::storage::metrics`]). Without an installed recorder (no `--http-port`, so
//! nobody can scrape them) every call here does nothing.
//!
//! Names follow the Prometheus conventions: a `canhazdb_` prefix, `_total`
//! for counters, base units (`_seconds`).

use std::time::Instant;

use canhazdb_core::internal::INTERNAL_COMMAND;
use canhazdb_core::protocol::{Code, Command, Status};

use crate::storage::metrics as storage;

pub const REQUESTS_TOTAL: &str = "canhazdb_requests_total";
pub const REQUEST_DURATION_SECONDS: &str = "canhazdb_request_duration_seconds";
pub const REQUESTS_IN_FLIGHT: &str = "canhazdb_requests_in_flight";
pub const CONNECTIONS: &str = "canhazdb_connections";
pub const NOTIFY_DELIVERIES_TOTAL: &str = "canhazdb_notify_deliveries_total";

/// Bucket bounds of the histograms: latencies from a read served from
/// memory to a write that waited for a lock, and group sizes up to the
/// writer's largest batch.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Every histogram and its buckets.
pub const HISTOGRAMS: &[(&str, &[f64])] = &[
    (REQUEST_DURATION_SECONDS, LATENCY_BUCKETS),
    (storage::GROUP_COMMIT_OPERATIONS, GROUP_BUCKETS),
    (storage::WAL_SYNC_SECONDS, LATENCY_BUCKETS),
    (storage::CHECKPOINT_SECONDS, LATENCY_BUCKETS),
];

/// Gives each metric its help text and unit; called once, when a recorder
/// is installed.
pub fn describe() {
    storage::describe();
    metrics::describe_counter!(REQUESTS_TOTAL, "Requests answered, by command and reply status.");
    metrics::describe_histogram!(
        REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from a request's arrival at the dispatch to its reply, by command."
    );
    metrics::describe_gauge!(REQUESTS_IN_FLIGHT, "Requests being answered.");
    metrics::describe_gauge!(CONNECTIONS, "Open connections, by transport.");
    metrics::describe_counter!(NOTIFY_DELIVERIES_TOTAL, "Notify paths pushed to subscribers.");
}

/// The `command` label of a request's command byte.
fn command_label(command: u8) -> &'static str {
    if command == INTERNAL_COMMAND {
        return "internal";
    }
    match Code::from(command) {
        Code::Command(command) => match command {
            Command::Info => "info",
            Command::Count => "count",
            Command::Get => "get",
            Command::Post => "post",
            Command::Put => "put",
            Command::Patch => "patch",
            Command::Delete => "delete",
            Command::Notify => "notify",
            Command::NotifyOn => "notify_on",
            Command::NotifyOff => "notify_off",
            Command::Lock => "lock",
            Command::Unlock => "unlock",
            Command::Ready => "ready",
        },
        Code::Status(_) | Code::Unknown(_) => "unknown",
    }
}

/// The `status` label of a reply status: the spec's name without
/// `STATUS_`, in lower case (`STATUS_BAD_REQUEST` → `bad_request`).
pub fn status_label(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::BadRequest => "bad_request",
        Status::NotFound => "not_found",
        Status::Created => "created",
        Status::ServerError => "server_error",
        Status::ServerUnhealthy => "server_unhealthy",
        Status::ServerClosed => "server_closed",
        Status::Locked => "locked",
    }
}

/// One request being answered: counted in flight until [`Self::finish`]
/// (or until dropped, when its transport gave up on it).
pub struct RequestInFlight {
    command: &'static str,
    started: Instant,
}

impl RequestInFlight {
    pub fn start(command: u8) -> RequestInFlight {
        metrics::gauge!(REQUESTS_IN_FLIGHT).increment(1.0);
        RequestInFlight {
            command: command_label(command),
            started: Instant::now(),
        }
    }

    /// Counts the request with the status of its reply.
    pub fn finish(self, status: Status) {
        metrics::histogram!(REQUEST_DURATION_SECONDS, "command" => self.command)
            .record(self.started.elapsed().as_secs_f64());
        metrics::counter!(REQUESTS_TOTAL, "command" => self.command, "status" => status_label(status))
            .increment(1);
    }
}

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        metrics::gauge!(REQUESTS_IN_FLIGHT).decrement(1.0);
    }
}

/// One open connection of a transport (`tcp`, `websocket`, `http`), counted
/// in `canhazdb_connections` while it lives.
pub struct OpenConnection {
    transport: &'static str,
}

impl OpenConnection {
    pub fn open(transport: &'static str) -> OpenConnection {
        metrics::gauge!(CONNECTIONS, "transport" => transport).increment(1.0);
        OpenConnection { transport }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS, "transport" => self.transport).decrement(1.0);
    }
}

/// One notify path pushed to one subscriber.
pub fn notify_delivered() {
    metrics::counter!(NOTIFY_DELIVERIES_TOTAL).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_lower_case_names() {
        assert_eq!(command_label(Command::Get.as_u8()), "get");
        assert_eq!(command_label(Command::NotifyOn.as_u8()), "notify_on");
        assert_eq!(command_label(INTERNAL_COMMAND), "internal");
        assert_eq!(command_label(99), "unknown");
        for status in Status::ALL {
            let expected = status.name().trim_start_matches("STATUS_").to_ascii_lowercase();
            assert_eq!(status_label(*status), expected);
        }
    }
}
