//! `canhazdb-bench`: a load generator for canhazdb, like redis-benchmark.
//!
//! * [`cli`] — the command line.
//! * [`workload`] — the tests, the dataset's documents and the requests.
//! * [`runner`] — drives a test over many connections with many requests
//!   in flight, and measures it.
//! * [`connection`] — what the runner drives: a binary-protocol client, or
//!   a REST connection of `--http` ([`rest`]).
//! * [`dataset`] — loads (or reuses) the documents the read tests need.
//! * [`report`] — the table and the JSON output.
//! * [`progress`] — the progress line on stderr.
//! * [`rng`] — a tiny random number generator.
//!
//! The bench runs on a single-threaded runtime by default, so that on a small
//! machine it takes as little CPU as possible away from the server it measures.

mod cli;
mod connection;
mod dataset;
mod progress;
mod report;
mod rest;
mod rng;
mod runner;
mod workload;

use std::process::ExitCode;
use std::sync::Arc;

use canhazdb::client::Client;
use canhazdb_core::message::CollectionId;
use clap::Parser;

use cli::Args;
use connection::Connection;
use dataset::Dataset;
use report::Report;
use rest::RestConnection;
use runner::RunSpec;
use workload::{Operation, TestKind, Workload};

/// The tests of `--measure-single`, in order.
const SINGLE_TESTS: [TestKind; 4] = [
    TestKind::Count,
    TestKind::CountQuery,
    TestKind::Query,
    TestKind::Get,
];
/// Untimed requests before each `--measure-single` measurement (connection
/// and caches warm up).
const SINGLE_WARM_UP: u64 = 10;

pub fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("canhazdb-bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(&args)) {
        Ok(report) => {
            report.print(&args);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("canhazdb-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: &Args) -> Result<Report, String> {
    let collection = CollectionId::new(args.collection.as_str()).map_err(|error| error.to_string())?;
    let clients = connect_all(args).await?;
    let spec = RunSpec {
        total: Some(args.requests),
        duration: args.duration(),
        pipeline: args.in_flight_per_connection(),
        progress: !args.quiet,
    };
    let mut report = Report::default();

    let needs_dataset =
        args.load_only.is_some() || args.measure_single || args.tests.iter().any(|test| test.needs_dataset());
    if needs_dataset {
        let size = report::dataset_size(args);
        let dataset = dataset::ensure(&clients, &collection, size, args.doc_bytes, &spec)
            .await
            .map_err(|error| format!("checking the dataset: {error}"))?;
        match dataset {
            Dataset::Reused(present) => report.reused_documents = Some(present),
            Dataset::Loaded(load) => report.load = Some(load),
        }
    }
    if args.load_only.is_some() && !args.measure_single {
        return Ok(report);
    }

    if args.measure_single {
        let single = RunSpec {
            total: Some(args.single_requests),
            duration: None,
            pipeline: 1,
            progress: !args.quiet,
        };
        let warm_up = RunSpec {
            total: Some(SINGLE_WARM_UP),
            progress: false,
            ..single
        };
        for kind in SINGLE_TESTS {
            let workload = workload(kind, &collection, args);
            runner::run(&clients[..1], workload.clone(), &warm_up).await;
            report
                .single
                .push(runner::run(&clients[..1], workload, &single).await);
        }
        return Ok(report);
    }

    for &kind in &args.tests {
        report
            .tests
            .push(runner::run(&clients, workload(kind, &collection, args), &spec).await);
    }
    Ok(report)
}

fn workload(kind: TestKind, collection: &CollectionId, args: &Args) -> Arc<Workload> {
    Arc::new(Workload::new(
        Operation::Test(kind),
        collection.clone(),
        report::dataset_size(args),
        args.doc_bytes,
    ))
}

/// Every connection: binary-protocol clients, each ready (the server sent
/// READY), or with `--http` keep-alive connections to the HTTP port.
async fn connect_all(args: &Args) -> Result<Vec<Connection>, String> {
    let tls = args.tls()?;
    let mut clients = Vec::new();
    for address in args.connection_addresses() {
        let connect = async {
            if args.http {
                return Ok(Connection::Rest(Arc::new(
                    RestConnection::connect(&address).await?,
                )));
            }
            let client = Client::connect_with(&address, tls.as_ref()).await?;
            client.wait_ready().await?;
            Ok::<_, canhazdb::client::Error>(Connection::Binary(client))
        };
        let client = tokio::time::timeout(args.ready_timeout(), connect)
            .await
            .map_err(|_| format!("connecting to {address}: no READY in time"))?
            .map_err(|error| format!("connecting to {address}: {error}"))?;
        clients.push(client);
    }
    Ok(clients)
}
