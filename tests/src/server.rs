//! [`TestServer`]: one `canhazdb` process on loopback with its own data dir.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::{sleep, Instant};

/// The `--node-name` every test server runs with.
pub const NODE_NAME: &str = "it-node";
/// How long a starting server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server binary is: `$CANHAZDB_BIN`, else `canhazdb` in the
/// target directory of the running test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/canhazdb`).
pub fn binary_path() -> PathBuf {
    if let Some(path) = std::env::var_os("CANHAZDB_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "CANHAZDB_BIN={} is not a file; build it first with cargo build -p canhazdb",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let path = profile_dir.join(format!("canhazdb{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the server binary {} is missing: build it first with cargo build -p canhazdb \
         (with the same CARGO_TARGET_DIR and profile as the tests), or set CANHAZDB_BIN",
        path.display()
    );
    path
}

/// Starts the server binary with `args` and `--data-dir data_dir`, which
/// must refuse to start at once (within 10 s); returns what it wrote to
/// stderr.
pub async fn refused_start(args: &[&str], data_dir: &Path) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(binary_path())
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .output(),
    )
    .await
    .expect("the refusal is immediate")
    .expect("run the binary");
    assert!(!output.status.success(), "it must not start: {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local_addr").port()
}

/// A running server. Dropping it kills the process and removes its data dir.
pub struct TestServer {
    child: Option<Child>,
    port: u16,
    node_name: String,
    extra_args: Vec<String>,
    /// `--http-port`, when the server serves HTTP too.
    http_port: Option<u16>,
    // Declared last: removed after the process is gone.
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with default options.
    pub async fn start() -> TestServer {
        TestServer::start_with(&[]).await
    }

    /// Starts a server with extra CLI arguments (e.g. `["--max-frame-bytes", "1024"]`).
    pub async fn start_with(extra_args: &[&str]) -> TestServer {
        TestServer::start_serving(extra_args, false).await
    }

    /// Starts a server that also serves HTTP (`--http-port`, see
    /// [`TestServer::http_addr`]), with extra CLI arguments.
    pub async fn start_http(extra_args: &[&str]) -> TestServer {
        TestServer::start_serving(extra_args, true).await
    }

    async fn start_serving(extra_args: &[&str], http: bool) -> TestServer {
        let extra_args: Vec<String> = extra_args.iter().map(|s| (*s).to_owned()).collect();
        let mut server = TestServer::stopped(NODE_NAME, 0, extra_args);
        // A port picked as free can be taken by a parallel test before the
        // server binds it: try a few.
        for attempt in 0..3 {
            server.port = free_port();
            if http {
                server.http_port = Some(free_port());
            }
            match server.spawn_and_wait().await {
                Ok(()) => return server,
                Err(error) if attempt < 2 => {
                    eprintln!("server start attempt {attempt} failed: {error}; retrying");
                }
                Err(error) => panic!("{error}"),
            }
        }
        unreachable!()
    }

    /// A server that is not started yet: a fresh temporary data dir, the
    /// given `--node-name`, port and extra CLI arguments. Start it with
    /// [`TestServer::spawn_process`] and [`TestServer::wait_accepting`] (the
    /// cluster harness spawns every node before waiting for any).
    pub fn stopped(node_name: &str, port: u16, extra_args: Vec<String>) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("canhazdb-it-")
            .tempdir()
            .expect("create a temp dir");
        std::fs::create_dir_all(dir.path().join("data")).expect("create the data dir");
        TestServer {
            child: None,
            port,
            node_name: node_name.to_owned(),
            extra_args,
            http_port: None,
            dir,
        }
    }

    /// Serves HTTP on `port` too, from the next start on.
    pub fn set_http_port(&mut self, port: u16) {
        self.http_port = Some(port);
    }

    /// The address of the HTTP port.
    #[track_caller]
    pub fn http_addr(&self) -> SocketAddr {
        let port = self
            .http_port
            .expect("this server was started without --http-port");
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The `--node-name` this server runs with.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The extra CLI arguments of the next start (e.g. `--join` flags).
    pub fn extra_args(&self) -> &[String] {
        &self.extra_args
    }

    /// Replaces the extra CLI arguments; they apply from the next
    /// [`TestServer::restart`] on.
    pub fn set_extra_args(&mut self, extra_args: Vec<String>) {
        self.extra_args = extra_args;
    }

    /// Whether the process runs (it has not exited and was not killed).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory passed as `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file that receives the server's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `bytes` of the log.
    pub fn log_tail(&self, bytes: usize) -> String {
        let log = self.log();
        let mut start = log.len().saturating_sub(bytes);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_owned()
    }

    /// Up to `max` panics the server logged, each with the line after it
    /// (the panic message).
    pub fn logged_panics(&self, max: usize) -> Vec<String> {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines
            .iter()
            .enumerate()
            .filter(|(_, line)| line.contains("panicked at"))
            .take(max)
            .map(|(at, line)| match lines.get(at + 1) {
                Some(message) => format!("{line}\n    {message}"),
                None => (*line).to_owned(),
            })
            .collect()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Panics (with the log tail) if the process has exited.
    #[track_caller]
    pub fn assert_alive(&mut self) {
        let exited = match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait"),
            None => panic!("the server is not running"),
        };
        if let Some(exit) = exited {
            panic!(
                "the server process died ({exit}); log tail:\n{}",
                self.log_tail(4000)
            );
        }
    }

    /// Kills the process with SIGKILL (no shutdown code runs) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process (if running) and starts it again on the same data
    /// dir and port, waiting until it accepts connections.
    pub async fn restart(&mut self) {
        self.kill9();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn_and_wait().await {
                Ok(()) => return,
                // The port may linger for a moment after the kill.
                Err(error) if Instant::now() < deadline => {
                    eprintln!("restart failed: {error}; retrying");
                    sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("{error}"),
            }
        }
    }

    /// Spawns the process without waiting for it (see [`TestServer::stopped`]).
    pub fn spawn_process(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the server {} already runs", self.node_name);
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("open the log file: {e}"))?;
        let mut header: &File = &log;
        let _ = writeln!(
            header,
            "=== harness: starting canhazdb {} on 127.0.0.1:{} with {:?} ===",
            self.node_name, self.port, self.extra_args
        );
        let stderr = log.try_clone().map_err(|e| format!("clone log: {e}"))?;
        let port = self.port.to_string();
        let data_dir = self.data_dir();
        let mut command = Command::new(binary_path());
        command
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(&port)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--node-name")
            .arg(&self.node_name)
            .args(&self.extra_args);
        if let Some(port) = self.http_port {
            command.arg("--http-port").arg(port.to_string());
        }
        // The TLS switch, unless the test brought certificates of its own.
        if crate::tls::enabled() && !self.extra_args.iter().any(|arg| arg == "--certs-dir") {
            command
                .arg("--certs-dir")
                .arg(crate::tls::write_node_certs(self.dir.path()));
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr));
        let child = command
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary_path().display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Spawns and waits (bounded) until the port accepts a connection.
    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.spawn()?;
        self.wait_accepting().await
    }

    /// Waits (bounded) until the spawned process accepts connections; kills
    /// it and explains why (with the log tail) if it exits or never does.
    pub async fn wait_accepting(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(exit) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!(
                    "the server {} exited during start-up ({exit}); log tail:\n{}",
                    self.node_name,
                    self.log_tail(4000)
                ));
            }
            let connect = tokio::net::TcpStream::connect(self.addr());
            if let Ok(Ok(_stream)) = tokio::time::timeout(Duration::from_millis(500), connect).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(format!(
                    "the server did not accept connections on {} within {START_TIMEOUT:?}; log tail:\n{}",
                    self.addr(),
                    self.log_tail(4000)
                ));
            }
            sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            // A panic inside the server is the most useful line of a long log.
            let panics = self.logged_panics(5);
            if !panics.is_empty() {
                eprintln!(
                    "--- canhazdb {} logged panics ---\n{}",
                    self.node_name,
                    panics.join("\n")
                );
            }
            eprintln!(
                "--- canhazdb {} log tail ({}) ---\n{}\n--- end of log ---",
                self.node_name,
                self.log_path().display(),
                self.log_tail(3000)
            );
            if let Some(keep) = std::env::var_os("CANHAZDB_IT_KEEP_LOGS") {
                // Keep the whole log for a bug report (the data dir goes).
                let keep = PathBuf::from(keep);
                let _ = std::fs::create_dir_all(&keep);
                let name = format!("{}-{}.log", self.node_name, self.port);
                if std::fs::copy(self.log_path(), keep.join(&name)).is_ok() {
                    eprintln!("(full log kept as {})", keep.join(name).display());
                }
            }
        }
    }
}
