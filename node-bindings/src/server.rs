//! `createServer`: a canhazdb node inside the Node.js process.
//!
//! Each server gets a thread of its own that owns a multi-threaded tokio
//! runtime: the thread starts the node, waits for the stop signal, shuts
//! the node down (requests in flight finish, storage is flushed) and then
//! drops the runtime, so that once `close()` resolves no thread of that
//! server is left. The JS thread never blocks on a server, except in the
//! environment's cleanup hook, which stops a server that was never closed
//! when Node.js tears the environment down (end of the event loop, or a
//! worker thread ending) — bounded by [`CLEANUP_TIMEOUT`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canhazdb::server::{default_node_name, RunningServer, ServerConfig};
use canhazdb::tls::TlsFiles;
use canhazdb_core::frame::DEFAULT_MAX_FRAME_BYTES;
use napi::bindgen_prelude::{Buffer, Either, PromiseRaw};
use napi::Env;
use napi_derive::napi;
use tokio::sync::{oneshot, watch};

use crate::error::Failure;
use crate::keepalive::KeepAlive;
use crate::settle;

/// How long the cleanup hook waits for a server that was not closed.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopped server's runtime may take to wind its threads down.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Options of `createServer` (all optional).
#[napi(object)]
pub struct ServerOptions {
    /// Address to listen on. Default `"127.0.0.1"`.
    pub host: Option<String>,
    /// TCP port. Default 7060; `0` picks a free port (read it from `server.port`).
    pub port: Option<u32>,
    /// The `"host:port"` other nodes dial to reach this one, when it is not
    /// `host:port` (behind NAT, a proxy, a container's published port).
    pub advertise: Option<String>,
    /// Where the node keeps its data. Default `canhazdata/<nodeName>` under the current directory.
    pub data_dir: Option<String>,
    /// The node's name in the cluster. Default: the host name of the machine.
    pub node_name: Option<String>,
    /// Other nodes to join, as `"host:port"`; may name this node itself.
    #[napi(ts_type = "string | string[]")]
    pub join: Option<Either<String, Vec<String>>>,
    /// How many nodes store each document. Default 3.
    pub replicas: Option<u32>,
    /// Largest frame the node accepts, in bytes. Default 16 MiB.
    pub max_frame_bytes: Option<u32>,
    /// Also accept WebSocket connections (browser clients) on this
    /// `"host:port"`; port 0 picks a free one (read it from `server.wsPort`).
    pub ws: Option<String>,
    /// Mutual TLS on every listener (TCP and `ws`, which becomes `wss`):
    /// only clients with a certificate signed by `tls.ca` are served.
    pub tls: Option<ServerTlsOptions>,
    /// Without `tls`, listen on a host other than loopback anyway (anyone
    /// who can reach it can act as a cluster node). Default false.
    pub insecure: Option<bool>,
}

/// The `tls` option of `createServer`: PEM contents (strings or Buffers,
/// like `tls.createServer`), not file names.
///
/// They are written to `<dataDir>/tls/` (`ca.crt`, `node.crt`, `node.key`,
/// mode 0600, in a 0700 directory) and the node reads them from there at
/// start; an embedded server does not reload them (there is no SIGHUP
/// reload): restart it with new certificates instead.
#[napi(object)]
pub struct ServerTlsOptions {
    /// The cluster's CA certificate: clients and peers must present a certificate it signed.
    #[napi(ts_type = "Pem")]
    pub ca: Either<String, Buffer>,
    /// This node's certificate (CN `node`, naming the host clients connect to).
    #[napi(ts_type = "Pem")]
    pub cert: Either<String, Buffer>,
    /// The private key of `cert`.
    #[napi(ts_type = "Pem")]
    pub key: Either<String, Buffer>,
}

/// A canhazdb node running inside this process. Created by `createServer`.
///
/// While open it keeps the Node.js process alive, like a listening
/// `net.Server`; see `unref()`.
#[napi]
pub struct Server {
    host: String,
    port: u32,
    ws_port: Option<u32>,
    node_name: String,
    data_dir: String,
    control: Arc<Control>,
}

#[napi]
impl Server {
    /// The address the server listens on.
    #[napi(getter)]
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// The TCP port the server listens on (the real one when `port: 0` was asked).
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The port accepting WebSocket connections, when the `ws` option asked for them.
    #[napi(getter)]
    pub fn ws_port(&self) -> Option<u32> {
        self.ws_port
    }

    /// The node's name in the cluster.
    #[napi(getter)]
    pub fn node_name(&self) -> String {
        self.node_name.clone()
    }

    /// The node's data directory.
    #[napi(getter)]
    pub fn data_dir(&self) -> String {
        self.data_dir.clone()
    }

    /// Stops the server: stops accepting, lets requests in flight finish,
    /// closes every connection, flushes storage and stops the server's
    /// threads. Calling it again returns the same outcome.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let control = self.control.clone();
        settle(env, async move { control.stop().await }, |_, ()| Ok(()))
    }

    /// Lets the process exit while the server is still open (like `net.Server#unref`).
    #[napi]
    pub fn unref(&self) {
        self.control.keep_alive.unref();
    }

    /// Undoes `unref()`: the open server keeps the process alive again.
    #[napi(js_name = "ref")]
    pub fn refer(&self, env: &Env) -> napi::Result<()> {
        self.control.keep_alive.refer(env)
    }
}

/// Starts a canhazdb node in this process and resolves once it listens.
///
/// ```js
/// const server = await createServer({ port: 0, dataDir: './data/one', nodeName: 'one' })
/// console.log(server.port)
/// await server.close()
/// ```
#[napi(ts_return_type = "Promise<Server>")]
pub fn create_server<'env>(
    env: &'env Env,
    options: Option<ServerOptions>,
) -> napi::Result<PromiseRaw<'env, Server>> {
    let started = options
        .map_or_else(|| Ok(default_options()), config)
        .and_then(Control::spawn);
    settle(
        env,
        async move {
            let (control, started) = started?;
            match started.await {
                Ok(Ok(address)) => Ok((control, address)),
                Ok(Err(failure)) => Err(failure),
                Err(_) => Err(Failure::server("the server thread ended before it started")),
            }
        },
        |env, (control, (address, ws_address)): (Control, Addresses)| {
            let control = Arc::new(control);
            control.keep_alive.refer(env)?;
            // A server the program never closes is stopped when Node.js
            // tears the environment down.
            let for_cleanup = control.clone();
            env.add_env_cleanup_hook((), move |()| for_cleanup.stop_blocking(CLEANUP_TIMEOUT))?;
            Ok(Server {
                host: control.config.host.clone(),
                port: u32::from(address.port()),
                ws_port: ws_address.map(|address| u32::from(address.port())),
                node_name: control.config.node_name.clone(),
                data_dir: control.config.data_dir.display().to_string(),
                control,
            })
        },
    )
}

fn default_options() -> ServerConfig {
    config(ServerOptions {
        host: None,
        port: None,
        advertise: None,
        data_dir: None,
        node_name: None,
        join: None,
        replicas: None,
        max_frame_bytes: None,
        ws: None,
        tls: None,
        insecure: None,
    })
    .expect("the defaults are valid")
}

/// Turns the JS options into the server's configuration.
fn config(options: ServerOptions) -> Result<ServerConfig, Failure> {
    let port = options.port.unwrap_or(7060);
    let port = u16::try_from(port)
        .map_err(|_| Failure::argument(format!("port must be between 0 and 65535, not {port}")))?;
    let replicas = options.replicas.unwrap_or(3);
    if replicas == 0 {
        return Err(Failure::argument("replicas must be at least 1"));
    }
    let node_name = options.node_name.unwrap_or_else(default_node_name);
    if node_name.is_empty() {
        return Err(Failure::argument("nodeName must not be empty"));
    }
    let max_frame_bytes = match options.max_frame_bytes {
        Some(0) => return Err(Failure::argument("maxFrameBytes must be positive")),
        Some(bytes) => bytes as usize,
        None => DEFAULT_MAX_FRAME_BYTES,
    };
    let data_dir = match options.data_dir {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from("canhazdata").join(&node_name),
    };
    let join = match options.join {
        None => Vec::new(),
        Some(Either::A(one)) => vec![one],
        Some(Either::B(many)) => many,
    };
    let tls = match options.tls {
        Some(tls) => Some(write_tls_files(&data_dir, &tls)?),
        None => None,
    };
    Ok(ServerConfig {
        host: options.host.unwrap_or_else(|| "127.0.0.1".to_owned()),
        port,
        advertise: options.advertise,
        data_dir,
        node_name,
        join,
        replicas: replicas as usize,
        max_frame_bytes,
        ws: options.ws,
        http: None,
        tls,
        insecure: options.insecure.unwrap_or(false),
    })
}

/// Writes the PEM contents of the `tls` option where the node reads them:
/// `<dataDir>/tls/{ca.crt,node.crt,node.key}`, readable by this user only.
fn write_tls_files(data_dir: &Path, tls: &ServerTlsOptions) -> Result<TlsFiles, Failure> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let dir = data_dir.join("tls");
    let failed = |path: &Path, error: std::io::Error| {
        Failure::server(format!(
            "cannot write the TLS files to {}: {error}",
            path.display()
        ))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|error| failed(&dir, error))?;
    // An existing directory keeps its mode otherwise.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|error| failed(&dir, error))?;
    let files = TlsFiles::in_dir(&dir);
    for (path, pem, what) in [
        (&files.ca, &tls.ca, "tls.ca"),
        (&files.cert, &tls.cert, "tls.cert"),
        (&files.key, &tls.key, "tls.key"),
    ] {
        let bytes = match pem {
            Either::A(text) => text.as_bytes(),
            Either::B(bytes) => bytes.as_ref(),
        };
        if !bytes.windows(11).any(|window| window == b"-----BEGIN ") {
            return Err(Failure::tls(format!(
                "{what} must be PEM contents (\"-----BEGIN ...\"), as a string or Buffer, not a file name"
            )));
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|error| failed(path, error))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| file.write_all(bytes))
            .and_then(|()| file.sync_all())
            .map_err(|error| failed(path, error))?;
    }
    Ok(files)
}

/// What a JS `Server` (and the cleanup hook) hold of a running server.
struct Control {
    config: ServerConfig,
    /// Taken by the first stop; sending (or dropping) it stops the server.
    stop: Mutex<Option<oneshot::Sender<()>>>,
    /// `Some(outcome)` once the server has stopped and its runtime is gone.
    stopped: watch::Receiver<Option<Result<(), Failure>>>,
    /// The same news for the cleanup hook, which must wait without a runtime.
    stopped_blocking: Mutex<Option<std_mpsc::Receiver<()>>>,
    keep_alive: KeepAlive,
}

/// Where the server listens: TCP, and WebSocket if asked.
type Addresses = (SocketAddr, Option<SocketAddr>);
type Started = oneshot::Receiver<Result<Addresses, Failure>>;

impl Control {
    /// Starts the server's thread and runtime; the receiver learns whether
    /// the node started.
    fn spawn(config: ServerConfig) -> Result<(Control, Started), Failure> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(format!("canhazdb-{}", config.node_name))
            .enable_all()
            .build()
            .map_err(|error| Failure::server(format!("cannot start the server's runtime: {error}")))?;
        let (stop, stop_signal) = oneshot::channel::<()>();
        let (started_sender, started) = oneshot::channel();
        let (stopped_sender, stopped) = watch::channel(None);
        let (stopped_blocking_sender, stopped_blocking) = std_mpsc::channel();
        let server_config = config.clone();
        std::thread::Builder::new()
            .name(format!("canhazdb-{}-main", config.node_name))
            .spawn(move || {
                let outcome = runtime.block_on(async move {
                    let server = match RunningServer::start(server_config).await {
                        Ok(server) => server,
                        Err(error) => {
                            let failure = Failure::from(error);
                            let _ = started_sender.send(Err(failure.clone()));
                            return Err(failure);
                        }
                    };
                    let _ = started_sender.send(Ok((server.local_addr(), server.ws_local_addr())));
                    // A dropped sender (everything holding it is gone) stops too.
                    let _ = stop_signal.await;
                    server.shutdown().await.map_err(Failure::from)
                });
                runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
                let _ = stopped_sender.send(Some(outcome));
                let _ = stopped_blocking_sender.send(());
            })
            .map_err(|error| Failure::server(format!("cannot start the server's thread: {error}")))?;
        let control = Control {
            config,
            stop: Mutex::new(Some(stop)),
            stopped,
            stopped_blocking: Mutex::new(Some(stopped_blocking)),
            keep_alive: KeepAlive::default(),
        };
        Ok((control, started))
    }

    fn signal_stop(&self) {
        let stop = take(&self.stop);
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
    }

    /// Stops the server (once) and waits until it has stopped.
    async fn stop(&self) -> Result<(), Failure> {
        self.signal_stop();
        let mut stopped = self.stopped.clone();
        let outcome = match stopped.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Ok(())),
            Err(_) => Err(Failure::server("the server thread ended abnormally")),
        };
        self.keep_alive.close();
        outcome
    }

    /// [`stop`](Control::stop) for the cleanup hook: blocks, for at most `timeout`.
    fn stop_blocking(&self, timeout: Duration) {
        self.signal_stop();
        let waiting = take(&self.stopped_blocking);
        if let Some(waiting) = waiting {
            let _ = waiting.recv_timeout(timeout);
        }
        self.keep_alive.close();
    }
}

/// Takes what `slot` holds, even from a poisoned mutex (a panic elsewhere
/// must not keep the server from stopping).
fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
}
