//! Where this run of a node numbers its connections from: above every
//! number an earlier run of it used, so the lock table can void an earlier
//! run's locks ([`crate::locks::LockManager::release_earlier_runs`]).
//!
//! The wall clock gives the number (microseconds × 1,024: a run would need
//! 1,024 connections a microsecond of uptime to reach the next one's), and
//! the data directory remembers the last run's, so a clock that went back
//! (an NTP step, a restored VM) still gives a higher one.

use std::io::Write;
use std::path::Path;

/// The file in the data directory that holds the last run's first number.
const FILE: &str = "first-connection";

/// How far above the last run's first number a run starts when the clock
/// says less: more connections than any run can open.
const AFTER_A_CLOCK_STEP_BACK: u64 = 1 << 40;

/// This run's first connection number, recorded durably before it is used.
pub fn first_connection(data_dir: &Path, started_micros: u64) -> std::io::Result<u64> {
    let path = data_dir.join(FILE);
    let previous = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>().ok(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    let by_clock = started_micros.saturating_mul(1024);
    let first = match previous {
        Some(previous) if by_clock <= previous => {
            tracing::warn!(
                "the wall clock is behind this node's previous start; numbering connections after \
                 the previous run's instead"
            );
            previous.saturating_add(AFTER_A_CLOCK_STEP_BACK)
        }
        _ => by_clock,
    };
    let temporary = data_dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    writeln!(file, "{first}")?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_run_starts_above_the_last_even_when_the_clock_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = first_connection(dir.path(), 1_000_000).unwrap();
        assert_eq!(first, 1_000_000 * 1024);
        let later = first_connection(dir.path(), 2_000_000).unwrap();
        assert_eq!(later, 2_000_000 * 1024, "a later clock is used as it is");
        let stepped_back = first_connection(dir.path(), 1_500_000).unwrap();
        assert!(stepped_back > later, "{stepped_back} must be above {later}");
        let again = first_connection(dir.path(), 1_500_000).unwrap();
        assert!(again > stepped_back);
    }
}
