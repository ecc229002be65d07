//! `canhazdb`: runs one node of a canhazdb cluster.

use std::path::PathBuf;

use canhazdb::http::{HttpOptions, DEFAULT_LOCK_LEASE};
use canhazdb::server::{default_node_name, RunningServer, ServerConfig};
use canhazdb::tls::{self, TlsFiles};
use canhazdb_core::frame::DEFAULT_MAX_FRAME_BYTES;
use clap::Parser;

/// mimalloc: the server allocates many small, short-lived buffers per
/// request, where glibc's malloc showed up as a quarter of the CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A sharded, replicated JSON document database that pushes change events.
///
/// With no command, runs a node. With --tls-ca/--tls-cert/--tls-key (or
/// --certs-dir) every listener speaks only mutual TLS: clients must present
/// a certificate from the same CA, and only certificates with CN `node` may
/// act as cluster nodes. Without them the node listens on loopback only,
/// unless --insecure is given.
#[derive(Debug, Parser)]
#[command(name = "canhazdb", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Make certificates for a cluster (standard X.509; openssl works too).
    #[command(subcommand)]
    Cert(CertCommand),
}

// The subcommands are spelled `create-…` on the command line, as documented.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, clap::Subcommand)]
enum CertCommand {
    /// The cluster's certificate authority: ca.crt and ca.key.
    CreateCa {
        #[command(flatten)]
        target: CertTarget,
    },
    /// A node certificate (node.crt, node.key; CN `node`) for these host
    /// names and IP addresses, signed by the CA in --certs-dir.
    CreateNode {
        #[command(flatten)]
        target: CertTarget,
        #[arg(required = true, value_name = "HOST")]
        hosts: Vec<String>,
    },
    /// A client certificate NAME.crt, NAME.key (CN = NAME), signed by the CA in --certs-dir.
    CreateClient {
        #[command(flatten)]
        target: CertTarget,
        name: String,
    },
}

#[derive(Debug, clap::Args)]
struct CertTarget {
    /// Where the CA is and the new files go.
    #[arg(long)]
    certs_dir: PathBuf,
    /// Replace files that exist already.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// TCP port to listen on.
    #[arg(long, default_value_t = 7060)]
    port: u16,
    /// The address other nodes dial to reach this one [default: --host:--port].
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Where this node keeps its data [default: ./canhazdata/<node-name>].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// This node's name in the cluster [default: the hostname].
    #[arg(long)]
    node_name: Option<String>,
    /// Another node to join (HOST:PORT); repeat for several. May name this node.
    #[arg(long, value_name = "HOST:PORT")]
    join: Vec<String>,
    /// How many nodes store each document.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    replicas: u16,
    /// Largest accepted frame; a longer one closes its connection.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: usize,
    /// Also accept WebSocket connections (for browsers) on this port; 0 picks a free one.
    #[arg(long)]
    ws_port: Option<u16>,
    /// Address for WebSocket connections [default: --host].
    #[arg(long, requires = "ws_port")]
    ws_host: Option<String>,
    /// Also serve HTTP on this port; 0 picks a free one: REST under
    /// /c/{collection}, locks under /locks, the change feed at /changes
    /// (Server-Sent Events), /health/live, /health/ready, /metrics
    /// (Prometheus), /ws (WebSocket) and an admin console at /. With TLS it
    /// takes only mutual TLS, like --port.
    #[arg(long)]
    http_port: Option<u16>,
    /// Address for HTTP connections [default: --host].
    #[arg(long, requires = "http_port")]
    http_host: Option<String>,
    /// How long a lock taken over HTTP (POST /locks) is held unless renewed
    /// (POST /locks/{id}/renew).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_LOCK_LEASE.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..), requires = "http_port")]
    http_lock_lease: u64,
    /// The cluster CA certificate (PEM): peers and clients must chain to it.
    #[arg(long, requires_all = ["tls_cert", "tls_key"], conflicts_with = "certs_dir")]
    tls_ca: Option<PathBuf>,
    /// This node's certificate (PEM, CN `node`).
    #[arg(long, requires_all = ["tls_ca", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, requires_all = ["tls_ca", "tls_cert"])]
    tls_key: Option<PathBuf>,
    /// Shorthand for --tls-ca DIR/ca.crt --tls-cert DIR/node.crt --tls-key DIR/node.key.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    certs_dir: Option<PathBuf>,
    /// Without TLS, listen on addresses other than loopback anyway.
    #[arg(long)]
    insecure: bool,
}

impl RunArgs {
    fn tls_files(&self) -> Option<TlsFiles> {
        if let Some(dir) = &self.certs_dir {
            return Some(TlsFiles::in_dir(dir));
        }
        Some(TlsFiles {
            ca: self.tls_ca.clone()?,
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }
}

/// Runs `canhazdb cert …`.
fn run_cert(command: CertCommand) -> std::process::ExitCode {
    let created = match &command {
        CertCommand::CreateCa { target } => tls::create_ca(&target.certs_dir, target.overwrite),
        CertCommand::CreateNode { target, hosts } => {
            tls::create_node(&target.certs_dir, hosts, target.overwrite)
        }
        CertCommand::CreateClient { target, name } => {
            tls::create_client(&target.certs_dir, name, target.overwrite)
        }
    };
    match created {
        Ok(files) => {
            println!("wrote {} and {}", files.cert.display(), files.key.display());
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("canhazdb cert: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    canhazdb::logging::init();
    let Cli { command, run: cli } = Cli::parse();
    if let Some(Command::Cert(command)) = command {
        return run_cert(command);
    }
    let tls = cli.tls_files();
    let node_name = cli.node_name.unwrap_or_else(default_node_name);
    let ws = cli
        .ws_port
        .map(|port| format!("{}:{port}", cli.ws_host.as_deref().unwrap_or(&cli.host)));
    let http = cli.http_port.map(|port| HttpOptions {
        address: format!("{}:{port}", cli.http_host.as_deref().unwrap_or(&cli.host)),
        lock_lease: std::time::Duration::from_secs(cli.http_lock_lease),
    });
    let config = ServerConfig {
        data_dir: cli
            .data_dir
            .unwrap_or_else(|| PathBuf::from("canhazdata").join(&node_name)),
        host: cli.host,
        port: cli.port,
        advertise: cli.advertise,
        node_name,
        join: cli.join,
        replicas: usize::from(cli.replicas),
        max_frame_bytes: cli.max_frame_bytes,
        ws,
        http,
        tls,
        insecure: cli.insecure,
    };
    let server = match RunningServer::start(config).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, "canhazdb could not start");
            return std::process::ExitCode::FAILURE;
        }
    };
    wait_for_stop_signal(&server).await;
    tracing::info!("stop signal received; finishing requests in flight");
    match server.shutdown().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "canhazdb did not stop cleanly");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Waits for SIGINT or SIGTERM; on SIGHUP, reads the certificates again.
async fn wait_for_stop_signal(server: &RunningServer) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut hangup = signal(SignalKind::hangup()).expect("install SIGHUP handler");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = terminate.recv() => return,
            _ = hangup.recv() => match server.reload_tls() {
                Ok(true) => tracing::info!("SIGHUP: certificates reloaded"),
                Ok(false) => tracing::info!("SIGHUP: no TLS configured, nothing to reload"),
                Err(error) => tracing::error!(%error, "SIGHUP: certificates not reloaded; the old ones stay in use"),
            },
        }
    }
}
