//! The progress line on stderr while a run goes on, redrawn in place
//! (`\r`) about every 500 ms: `POST: 123456/200000 (61234/s)`.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(500);

/// Redraws the line until the task is aborted. `done` counts finished
/// requests; `total` is `None` when the run is bounded by time.
pub async fn show(label: &'static str, done: Arc<AtomicU64>, total: Option<u64>) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.tick().await; // The first tick is immediate.
    let mut last = (Instant::now(), 0);
    loop {
        ticks.tick().await;
        let now = (Instant::now(), done.load(Ordering::Relaxed));
        let rate = (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64();
        let of_total = total.map(|total| format!("/{total}")).unwrap_or_default();
        draw(&format!("{label}: {}{of_total} ({rate:.0}/s)", now.1));
        last = now;
    }
}

/// Erases the line.
pub fn clear() {
    draw("");
}

fn draw(line: &str) {
    let mut stderr = std::io::stderr().lock();
    // `\x1b[K` clears to the end of the line, so a shorter line leaves no tail.
    let _ = write!(stderr, "\r{line}\x1b[K");
    let _ = stderr.flush();
}
