//! The fault harness's short schedule (issue 11): fixed seeds, so a change
//! that breaks one is caught the same way every time, plus one random seed
//! (printed) for what the fixed ones miss. `scripts/faults.sh --minutes N`
//! runs it longer; DEVELOPERS.md explains the harness.
//!
//! Needs root (network namespaces); elsewhere it says so and passes without
//! running, and so under the TLS switch (the namespaces' addresses are not
//! in the harness's certificates).
//!
//! Not yet part of the default run: long runs still find anomalies (a
//! document that every node holds repair records for has no repair source,
//! and the cluster stays unhealthy; issue 11's note), so this would fail at
//! random. Run it with
//! `cargo test -p canhazdb-tests --test faults -- --ignored`.

use std::time::Duration;

use canhazdb_tests::faults::{self, Config};

/// Fixed seeds, chosen because together they inject every kind of fault.
const SEEDS: &[u64] = &[11, 29];
const RUN: Duration = Duration::from_secs(35);

#[test]
#[ignore = "the harness still finds open anomalies (issue 11); run with --ignored"]
fn faults_break_no_promise() {
    if canhazdb_tests::tls::enabled() {
        eprintln!("skipped: CANHAZDB_TEST_TLS is set; the fault harness runs in the plain pass");
        return;
    }
    if let Some(why) = faults::unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let random = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|now| now.as_nanos() as u64)
        .unwrap_or(1);
    let mut failures = Vec::new();
    for seed in SEEDS.iter().copied().chain([random]) {
        eprintln!("fault run with seed {seed} (replay: scripts/faults.sh --seed {seed})");
        let report =
            faults::run(&Config::new(seed, RUN)).unwrap_or_else(|error| panic!("seed {seed}: {error}"));
        let failed = !report.anomalies.is_empty();
        eprint!("{}", report.render(failed));
        if failed {
            failures.push(seed);
        }
    }
    assert!(
        failures.is_empty(),
        "anomalies with seeds {failures:?} (reports above)"
    );
}
