//! Results as a table on stdout, or as JSON with `--json`.

use std::io::Write;

use serde_json::{json, Value};

use super::cli::Args;
use super::runner::RunResult;

/// Everything one invocation measured.
#[derive(Default)]
pub struct Report {
    /// Loading the dataset, if anything had to be loaded.
    pub load: Option<RunResult>,
    /// Dataset documents that were already present (reused, not loaded).
    pub reused_documents: Option<u64>,
    /// The throughput tests, in the order they ran.
    pub tests: Vec<RunResult>,
    /// `--measure-single`: one request in flight at a time.
    pub single: Vec<RunResult>,
}

impl Report {
    pub fn print(&self, args: &Args) {
        let text = if args.json {
            serde_json::to_string_pretty(&self.to_json(args)).unwrap_or_default() + "\n"
        } else {
            self.to_table(args)
        };
        // A closed stdout (`| head`) is not worth a panic.
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }

    fn to_json(&self, args: &Args) -> Value {
        let results = |runs: &[RunResult]| runs.iter().map(run_json).collect::<Vec<_>>();
        json!({
            "config": {
                "transport": args.transport(),
                "addresses": args.connection_addresses(),
                "connections": args.connection_count(),
                "pipeline": args.in_flight_per_connection(),
                "requests": args.requests,
                "duration_secs": args.duration,
                "collection": args.collection,
                "doc_bytes": args.doc_bytes,
                "dataset_documents": dataset_size(args),
            },
            "load": self.load.as_ref().map(run_json),
            "reused_documents": self.reused_documents,
            "tests": results(&self.tests),
            "single": results(&self.single),
        })
    }

    fn to_table(&self, args: &Args) -> String {
        let mut out = String::new();
        let addresses = args.connection_addresses();
        out.push_str(&format!(
            "canhazdb-bench: {} {} connection(s) to {}, {} in flight each, collection {:?}, ~{}-byte documents\n",
            args.connection_count(),
            args.transport(),
            distinct(&addresses).join(", "),
            args.in_flight_per_connection(),
            args.collection,
            args.doc_bytes
        ));
        if let Some(reused) = self.reused_documents {
            out.push_str(&format!("dataset: {reused} documents already present, reused\n"));
        }
        let mut notes = Vec::new();
        if let Some(load) = &self.load {
            out.push_str("\nLoading the dataset\n");
            out.push_str(&table(std::slice::from_ref(load), &mut notes));
        }
        if !self.tests.is_empty() {
            out.push_str("\nThroughput\n");
            out.push_str(&table(&self.tests, &mut notes));
        }
        if !self.single.is_empty() {
            out.push_str("\nSingle-request latency (one connection, one request in flight)\n");
            out.push_str(&table(&self.single, &mut notes));
        }
        if !notes.is_empty() {
            out.push('\n');
            for note in notes {
                out.push_str(&note);
                out.push('\n');
            }
        }
        out
    }
}

pub fn dataset_size(args: &Args) -> u64 {
    args.load_only.unwrap_or(args.preload)
}

fn distinct(addresses: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for address in addresses {
        if !seen.contains(address) {
            seen.push(address.clone());
        }
    }
    seen
}

const HEADER: [&str; 11] = [
    "test",
    "requests",
    "errors",
    "misses",
    "secs",
    "ops/s",
    "mean µs",
    "p50 µs",
    "p99 µs",
    "p99.9 µs",
    "max µs",
];

fn table(runs: &[RunResult], notes: &mut Vec<String>) -> String {
    let rows: Vec<[String; 11]> = runs
        .iter()
        .map(|run| {
            let latency = &run.latency;
            [
                run.label.to_owned(),
                run.completed.to_string(),
                run.errors.to_string(),
                run.misses.to_string(),
                format!("{:.2}", run.elapsed.as_secs_f64()),
                format!("{:.0}", run.ops_per_second()),
                format!("{:.0}", latency.mean()),
                latency.value_at_quantile(0.5).to_string(),
                latency.value_at_quantile(0.99).to_string(),
                latency.value_at_quantile(0.999).to_string(),
                latency.max().to_string(),
            ]
        })
        .collect();
    for run in runs {
        if let Some(error) = &run.first_error {
            notes.push(format!(
                "{}: {} error(s), the first: {error}",
                run.label, run.errors
            ));
        }
        if run.misses > 0 {
            let meaning = if run.label == "LOAD" {
                "documents already present"
            } else {
                "requests that found or changed no document"
            };
            notes.push(format!("{}: {} misses ({meaning})", run.label, run.misses));
        }
    }
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([HEADER[column].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (column, cell) in cells.iter().enumerate() {
            let padding = widths[column] - cell.chars().count();
            if column == 0 {
                text.push_str(&format!("{cell}{}", " ".repeat(padding)));
            } else {
                text.push_str(&format!("  {}{cell}", " ".repeat(padding)));
            }
        }
        text.push('\n');
        text
    };
    let header: Vec<String> = HEADER.iter().map(|cell| cell.to_string()).collect();
    let mut out = line(&header);
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

fn run_json(run: &RunResult) -> Value {
    let latency = &run.latency;
    json!({
        "test": run.label,
        "requests": run.completed,
        "errors": run.errors,
        "misses": run.misses,
        "seconds": run.elapsed.as_secs_f64(),
        "ops_per_sec": run.ops_per_second(),
        "latency_us": {
            "mean": latency.mean(),
            "p50": latency.value_at_quantile(0.5),
            "p99": latency.value_at_quantile(0.99),
            "p99_9": latency.value_at_quantile(0.999),
            "max": latency.max(),
        },
        "first_error": run.first_error,
    })
}
