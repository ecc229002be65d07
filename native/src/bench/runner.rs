//! Runs one operation over every connection with a fixed number of requests
//! in flight on each: `pipeline` worker tasks per connection, each sending
//! its next request as soon as its previous reply arrives. Workers take
//! operation numbers from one shared counter, so a run stops at exactly
//! `total` requests however the work spreads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canhazdb::client::Error;
use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use super::connection::Connection;
use super::progress;
use super::rng::Rng;
use super::workload::{Outcome, Workload};

/// Highest latency the histograms resolve, in microseconds (one hour);
/// slower requests are recorded as this.
const MAX_LATENCY_MICROS: u64 = 3_600_000_000;

/// How long a run goes on and how it is shown.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec {
    /// Stop after this many requests (`None`: only `duration` stops it).
    pub total: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Draw the progress line on stderr.
    pub progress: bool,
}

/// What a run measured.
pub struct RunResult {
    pub label: &'static str,
    /// Requests answered (successes, misses and failures).
    pub completed: u64,
    pub errors: u64,
    pub misses: u64,
    pub elapsed: Duration,
    /// Latency of every answered request, in microseconds.
    pub latency: Histogram<u64>,
    pub first_error: Option<String>,
}

impl RunResult {
    pub fn ops_per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Counters shared by the workers of a run.
struct RunState {
    next_index: AtomicU64,
    completed: Arc<AtomicU64>,
    stop: AtomicBool,
    limit: u64,
}

/// Tallies of one worker; latencies go to its connection's histogram (one
/// per connection rather than per worker keeps memory small with many workers).
#[derive(Default)]
struct Tally {
    errors: u64,
    misses: u64,
    first_error: Option<Error>,
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).expect("valid histogram bounds")
}

pub async fn run(connections: &[Connection], workload: Arc<Workload>, spec: &RunSpec) -> RunResult {
    let label = workload.operation().label();
    let state = Arc::new(RunState {
        next_index: AtomicU64::new(0),
        completed: Arc::new(AtomicU64::new(0)),
        stop: AtomicBool::new(false),
        limit: spec.total.unwrap_or(u64::MAX),
    });
    let started = Instant::now();
    let mut background = JoinSet::new();
    if let Some(duration) = spec.duration {
        let state = state.clone();
        background.spawn(async move {
            tokio::time::sleep(duration).await;
            state.stop.store(true, Ordering::Relaxed);
        });
    }
    if spec.progress {
        background.spawn(progress::show(label, state.completed.clone(), spec.total));
    }

    let histograms: Vec<_> = connections
        .iter()
        .map(|_| Arc::new(Mutex::new(new_histogram())))
        .collect();
    let mut workers = JoinSet::new();
    for (index, connection) in connections.iter().enumerate() {
        for slot in 0..spec.pipeline.max(1) {
            let seed =
                ((index as u64) << 32 | slot as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) ^ started_nanos();
            workers.spawn(worker(
                connection.clone(),
                workload.clone(),
                state.clone(),
                histograms[index].clone(),
                seed,
            ));
        }
    }
    let mut total = Tally::default();
    while let Some(joined) = workers.join_next().await {
        let tally = joined.expect("bench worker panicked");
        total.errors += tally.errors;
        total.misses += tally.misses;
        total.first_error = total.first_error.or(tally.first_error);
    }
    let elapsed = started.elapsed();
    background.abort_all();
    if spec.progress {
        progress::clear();
    }

    let mut latency = new_histogram();
    for histogram in histograms {
        latency
            .add(&*histogram.lock().unwrap())
            .expect("histograms with equal bounds merge");
    }
    RunResult {
        label,
        completed: state.completed.load(Ordering::Relaxed),
        errors: total.errors,
        misses: total.misses,
        elapsed,
        latency,
        first_error: total.first_error.map(|error| error.to_string()),
    }
}

/// Sends one request at a time until the run stops.
async fn worker(
    connection: Connection,
    workload: Arc<Workload>,
    state: Arc<RunState>,
    histogram: Arc<Mutex<Histogram<u64>>>,
    seed: u64,
) -> Tally {
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    while !state.stop.load(Ordering::Relaxed) {
        let index = state.next_index.fetch_add(1, Ordering::Relaxed);
        if index >= state.limit {
            break;
        }
        let request = workload.request(index, &mut rng);
        let sent = Instant::now();
        let result = connection.request(request).await;
        let micros = sent.elapsed().as_micros() as u64;
        histogram.lock().unwrap().saturating_record(micros.max(1));
        state.completed.fetch_add(1, Ordering::Relaxed);
        match workload.outcome(result) {
            Outcome::Ok => {}
            Outcome::Miss => tally.misses += 1,
            Outcome::Failed(error) => {
                tally.errors += 1;
                // A closed connection fails every later request at once:
                // stop instead of spinning through the rest of the run.
                let closed = matches!(error, Error::Closed | Error::Io(_));
                tally.first_error.get_or_insert(error);
                if closed {
                    break;
                }
            }
        }
    }
    tally
}

/// Varies the random picks between runs.
fn started_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_nanos() as u64)
        .unwrap_or(0)
}
