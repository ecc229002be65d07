//! Command-line options.

use std::path::PathBuf;
use std::time::Duration;

use canhazdb::client::{ClientTls, TlsConnector};
use clap::Parser;

use super::workload::TestKind;

/// Load generator for a canhazdb server or cluster, like redis-benchmark.
///
/// Each test drives `--connections` connections with `--pipeline` requests
/// in flight on each, and reports throughput and latency percentiles.
/// Read and PATCH tests work on a dataset of `--preload` documents
/// (ids `b000000000`, `b000000001`, …) that is loaded first unless the
/// collection already holds it.
#[derive(Debug, Parser)]
#[command(name = "canhazdb-bench", version)]
pub struct Args {
    /// Server host (ignored when --hosts is given).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// Server port (ignored when --hosts is given); with --http, the HTTP port.
    #[arg(long, default_value_t = 7060)]
    pub port: u16,

    /// Send the requests through the HTTP port's REST routes (`/c/…`) over
    /// HTTP/1.1 keep-alive connections instead of the binary protocol.
    /// HTTP/1.1 carries one request at a time, so this opens
    /// --connections × --pipeline connections with one request in flight
    /// each: as many in flight as over the binary protocol. No TLS.
    #[arg(long, conflicts_with = "tls_ca")]
    pub http: bool,

    /// Several nodes as HOST:PORT,HOST:PORT,…; connections are spread over
    /// them round-robin.
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,

    /// Connections (one client each); see --http.
    #[arg(short = 'c', long, default_value_t = 4)]
    pub connections: usize,

    /// Requests in flight per connection.
    #[arg(short = 'P', long, default_value_t = 64)]
    pub pipeline: usize,

    /// Requests per test.
    #[arg(short = 'n', long, default_value_t = 200_000)]
    pub requests: u64,

    /// Run each test for this many seconds instead of --requests.
    #[arg(long)]
    pub duration: Option<f64>,

    /// Tests to run, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "post,get,query,count,count-query,patch"
    )]
    pub tests: Vec<TestKind>,

    /// Collection to work in.
    #[arg(long, default_value = "bench")]
    pub collection: String,

    /// Approximate size of each posted document, as JSON.
    #[arg(long, default_value_t = 100)]
    pub doc_bytes: usize,

    /// Documents in the dataset of the read and PATCH tests (loaded unless
    /// already present).
    #[arg(long, default_value_t = 10_000)]
    pub preload: u64,

    /// Only load N dataset documents, as fast as possible, and report it.
    #[arg(long, value_name = "N")]
    pub load_only: Option<u64>,

    /// Measure single-request latency (one request in flight at a time) of
    /// COUNT, COUNT by query, GET by indexed query and GET by id on the
    /// dataset (of --load-only N documents if given, else --preload).
    #[arg(long)]
    pub measure_single: bool,

    /// Requests per --measure-single measurement.
    #[arg(long, default_value_t = 200)]
    pub single_requests: u64,

    /// Emit machine-readable JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,

    /// No progress line on stderr.
    #[arg(short, long)]
    pub quiet: bool,

    /// Runtime threads for the bench itself; 1 runs everything on one
    /// thread, leaving the other cores to the server.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// Seconds to wait for each connection's READY.
    #[arg(long, default_value_t = 10.0)]
    pub ready_timeout: f64,

    /// Connect over TLS, trusting this CA certificate (PEM); needs
    /// --tls-cert and --tls-key (the server requires a client certificate).
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,

    /// The client certificate (PEM) to present.
    #[arg(long, requires = "tls_ca")]
    pub tls_cert: Option<PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(long, requires = "tls_ca")]
    pub tls_key: Option<PathBuf>,
}

impl Args {
    /// The addresses to connect to, one per connection, round-robin.
    pub fn connection_addresses(&self) -> Vec<String> {
        let hosts = if self.hosts.is_empty() {
            vec![format!("{}:{}", self.host, self.port)]
        } else {
            self.hosts.clone()
        };
        (0..self.connection_count())
            .map(|i| hosts[i % hosts.len()].clone())
            .collect()
    }

    /// Connections opened: one per request in flight with --http.
    pub fn connection_count(&self) -> usize {
        match self.http {
            true => self.connections.max(1) * self.pipeline.max(1),
            false => self.connections.max(1),
        }
    }

    /// Requests in flight on each connection.
    pub fn in_flight_per_connection(&self) -> usize {
        match self.http {
            true => 1,
            false => self.pipeline.max(1),
        }
    }

    /// The transport, as the report names it.
    pub fn transport(&self) -> &'static str {
        match self.http {
            true => "http",
            false => "binary",
        }
    }

    pub fn duration(&self) -> Option<Duration> {
        self.duration.map(Duration::from_secs_f64)
    }

    pub fn ready_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.ready_timeout)
    }

    /// The TLS connector of --tls-ca/--tls-cert/--tls-key, if given.
    pub fn tls(&self) -> Result<Option<TlsConnector>, String> {
        let (Some(ca), Some(cert), Some(key)) = (&self.tls_ca, &self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let tls = ClientTls::from_files(ca, Some((cert, key))).map_err(|error| error.to_string())?;
        Ok(Some(tls.connector()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_host_spreading() {
        let args = Args::parse_from(["canhazdb-bench"]);
        assert_eq!(args.connection_addresses(), vec!["127.0.0.1:7060"; 4]);
        assert_eq!(args.tests.len(), 6);
        let args = Args::parse_from([
            "canhazdb-bench",
            "-c",
            "3",
            "--hosts",
            "a:1,b:2",
            "--tests",
            "get,count-query",
        ]);
        assert_eq!(args.connection_addresses(), vec!["a:1", "b:2", "a:1"]);
        assert_eq!(args.tests, vec![TestKind::Get, TestKind::CountQuery]);
    }

    #[test]
    fn http_opens_a_connection_per_request_in_flight() {
        let args = Args::parse_from(["canhazdb-bench", "--http", "-c", "2", "-P", "3"]);
        assert_eq!(args.connection_addresses().len(), 6);
        assert_eq!(args.in_flight_per_connection(), 1);
        let args = Args::parse_from(["canhazdb-bench", "-c", "2", "-P", "3"]);
        assert_eq!((args.connection_count(), args.in_flight_per_connection()), (2, 3));
    }
}
