//! Log output for the server binary: `RUST_LOG` filtering, and a rate limit
//! on warnings and errors so that a peer that is cut off does not flood the
//! log (openraft's replication loop alone reports every failed
//! AppendEntries, several lines a second per peer).
//!
//! Each WARN or ERROR call site may log [`BURST`] lines per [`WINDOW`]; what
//! it logs beyond that is counted, and the count is reported (one line on
//! stderr) when that call site logs again in a later window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Lines one call site may log per window.
pub const BURST: u32 = 3;
/// The window of the rate limit.
pub const WINDOW: Duration = Duration::from_secs(60);

struct Bucket {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

/// A per-call-site limit on WARN and ERROR events.
#[derive(Default)]
pub struct RateLimit {
    buckets: Mutex<HashMap<Identifier, Bucket>>,
}

impl RateLimit {
    /// Whether an event of `metadata` at `now` may be logged; reports what
    /// was suppressed in the window before.
    fn admit(&self, metadata: &Metadata<'_>, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(metadata.callsite()).or_insert(Bucket {
            window_start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(bucket.window_start) >= WINDOW {
            if bucket.suppressed > 0 {
                // Straight to stderr: logging through tracing from inside
                // its own filter would re-enter it.
                eprintln!(
                    "{} {} suppressed {} more like \"{}\" ({}:{}) in the last {} s",
                    humantime_now(),
                    metadata.level(),
                    bucket.suppressed,
                    metadata.name(),
                    metadata.target(),
                    metadata.line().unwrap_or(0),
                    WINDOW.as_secs()
                );
            }
            *bucket = Bucket {
                window_start: now,
                logged: 0,
                suppressed: 0,
            };
        }
        if bucket.logged < BURST {
            bucket.logged += 1;
            true
        } else {
            bucket.suppressed += 1;
            false
        }
    }
}

/// Seconds since the epoch, for the summary line (tracing's own timestamps
/// are not reachable from a filter).
fn humantime_now() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("[{}.{:03}]", since.as_secs(), since.subsec_millis())
}

fn is_limited(metadata: &Metadata<'_>) -> bool {
    metadata.is_event() && *metadata.level() <= Level::WARN
}

impl<S> Filter<S> for RateLimit {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        !is_limited(metadata) || self.admit(metadata, Instant::now())
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_limited(metadata) {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info, openraft warn),
/// with warnings and errors rate-limited per call site.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=warn".into());
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(RateLimit::default());
    tracing_subscriber::registry().with(filter).with(output).init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_site_logs_a_burst_per_window_and_the_rest_is_counted() {
        let limit = RateLimit::default();
        let metadata = tracing::Metadata::new(
            "unreachable",
            "test",
            Level::WARN,
            None,
            None,
            None,
            tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CALLSITE)),
            tracing::metadata::Kind::EVENT,
        );
        let start = Instant::now();
        let admitted = (0..100)
            .filter(|n| limit.admit(&metadata, start + Duration::from_millis(*n)))
            .count();
        assert_eq!(admitted, BURST as usize);
        let bucket_suppressed = |limit: &RateLimit| {
            limit
                .buckets
                .lock()
                .unwrap()
                .values()
                .map(|b| b.suppressed)
                .sum::<u64>()
        };
        assert_eq!(bucket_suppressed(&limit), 100 - u64::from(BURST));
        // A new window: allowed again, and the count starts over.
        assert!(limit.admit(&metadata, start + WINDOW + Duration::from_secs(1)));
        assert_eq!(bucket_suppressed(&limit), 0);
    }

    struct TestCallsite;
    static CALLSITE: TestCallsite = TestCallsite;
    impl tracing::callsite::Callsite for TestCallsite {
        fn set_interest(&self, _: Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("not registered")
        }
    }
}
