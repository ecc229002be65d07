//! `canhazdb`: runs one node of a canhazdb cluster.

use std::path::PathBuf;

use canhazdb::server::{default_node_name, RunningServer, ServerConfig};
use canhazdb_core::frame::DEFAULT_MAX_FRAME_BYTES;
use clap::Parser;

/// mimalloc: the server allocates many small, short-lived buffers per
/// request, where glibc's malloc showed up as a quarter of the CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A sharded, replicated JSON document database that pushes change events.
#[derive(Debug, Parser)]
#[command(name = "canhazdb", version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// TCP port to listen on.
    #[arg(long, default_value_t = 7060)]
    port: u16,
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
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let node_name = cli.node_name.unwrap_or_else(default_node_name);
    let ws = cli
        .ws_port
        .map(|port| format!("{}:{port}", cli.ws_host.as_deref().unwrap_or(&cli.host)));
    let config = ServerConfig {
        data_dir: cli
            .data_dir
            .unwrap_or_else(|| PathBuf::from("canhazdata").join(&node_name)),
        host: cli.host,
        port: cli.port,
        node_name,
        join: cli.join,
        replicas: usize::from(cli.replicas),
        max_frame_bytes: cli.max_frame_bytes,
        ws,
    };
    let server = match RunningServer::start(config).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, "canhazdb could not start");
            return std::process::ExitCode::FAILURE;
        }
    };
    wait_for_stop_signal().await;
    tracing::info!("stop signal received; finishing requests in flight");
    match server.shutdown().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "canhazdb did not stop cleanly");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
