//! The fault harness's long run: `canhazdb-faults --minutes N` runs
//! back-to-back runs of `--run-minutes` each (a fresh cluster and a fresh
//! seed each) and writes a report; `--seed S` replays one run.
//! `scripts/faults.sh` builds everything first and calls this.

use std::time::{Duration, Instant};

use canhazdb_tests::faults::{self, report, Config};

struct Args {
    minutes: f64,
    run_minutes: f64,
    seed: Option<u64>,
    nodes: usize,
    report: std::path::PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        minutes: 5.0,
        run_minutes: 5.0,
        seed: None,
        nodes: 3,
        report: "target/faults-report.txt".into(),
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = || words.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--minutes" => args.minutes = value()?.parse().map_err(|e| format!("--minutes: {e}"))?,
            "--run-minutes" => {
                args.run_minutes = value()?.parse().map_err(|e| format!("--run-minutes: {e}"))?
            }
            "--seed" => args.seed = Some(value()?.parse().map_err(|e| format!("--seed: {e}"))?),
            "--nodes" => args.nodes = value()?.parse().map_err(|e| format!("--nodes: {e}"))?,
            "--report" => args.report = value()?.into(),
            "--help" | "-h" => {
                return Err(
                    "usage: canhazdb-faults [--minutes N] [--run-minutes M] [--seed S] [--nodes 3] \
                            [--report FILE]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(why) = faults::unavailable() {
        eprintln!("canhazdb-faults cannot run here: {why}");
        return std::process::ExitCode::from(2);
    }
    let started = Instant::now();
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let mut reports = Vec::new();
    let mut next_seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|now| now.as_secs())
            .unwrap_or(1)
    });
    loop {
        let left = total.saturating_sub(started.elapsed());
        let run = left.min(Duration::from_secs_f64(args.run_minutes * 60.0));
        if run < Duration::from_secs(10) && !reports.is_empty() {
            break;
        }
        let mut config = Config::new(next_seed, run.max(Duration::from_secs(10)));
        config.nodes = args.nodes;
        eprintln!(
            "run {}: seed {next_seed}, {:.0} s of faults",
            reports.len() + 1,
            config.duration.as_secs_f64()
        );
        match faults::run(&config) {
            Ok(report) => {
                eprint!("{}", report.render(!report.anomalies.is_empty()));
                reports.push(report);
            }
            Err(error) => {
                eprintln!("seed {next_seed}: the harness failed: {error}");
                return std::process::ExitCode::FAILURE;
            }
        }
        if args.seed.is_some() {
            break;
        }
        next_seed = next_seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 16;
    }
    let mut text = report::summary(&reports);
    for report in &reports {
        text.push('\n');
        text.push_str(&report.render(true));
    }
    if let Err(error) = std::fs::write(&args.report, &text) {
        eprintln!("cannot write {}: {error}", args.report.display());
    }
    print!("{}", report::summary(&reports));
    eprintln!("report written to {}", args.report.display());
    if reports.iter().any(|report| !report.anomalies.is_empty()) {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
