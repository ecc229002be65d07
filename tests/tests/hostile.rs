//! Hostile clients: garbage, truncation, oversized frames, connection storms.
//! After each the server process must be alive and serving.

use std::sync::Arc;
use std::time::Duration;

use canhazdb_tests::tls;
use canhazdb_tests::{cmd, describe_frame, status, RawConn, ReadError, TestServer, XorShift};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{sleep, timeout, Instant};

/// The server answers a fresh connection normally.
async fn serves_normally(server: &mut TestServer) {
    server.assert_alive();
    let mut conn = RawConn::connect(server.addr()).await;
    conn.call(cmd::INFO, json!({"3": true})).await.expect(status::OK);
    conn.post("alive", json!({"v": 1})).await;
    server.assert_alive();
}

#[tokio::test]
async fn random_bytes_do_not_kill_the_server() {
    let mut server = TestServer::start().await;
    let mut rng = XorShift::new(0x5eed_cafe);
    for round in 0..8 {
        let mut stream = tls::connect(server.addr()).await.expect("connect");
        let mut garbage = vec![0u8; 16 * 1024];
        rng.fill(&mut garbage);
        if round % 2 == 1 {
            // Fewer terminators: long garbage frames with odd commands.
            for byte in garbage.iter_mut() {
                if *byte == 0x01 && rng.next_u64() % 8 != 0 {
                    *byte = 0x02;
                }
            }
        }
        let (mut read, mut write) = tokio::io::split(&mut stream);
        let writer = async {
            let _ = write.write_all(&garbage).await;
            let _ = write.shutdown().await;
        };
        let reader = async {
            let mut buffer = vec![0u8; 64 * 1024];
            let deadline = Instant::now() + Duration::from_secs(3);
            while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, read.read(&mut buffer)).await {
                if n == 0 {
                    break;
                }
            }
        };
        tokio::join!(writer, reader);
        drop(stream);
        serves_normally(&mut server).await;
    }
}

/// Random but well-formed frames: every command byte, JSON-ish payloads.
#[tokio::test]
async fn every_command_byte_with_odd_payloads_gets_a_reply() {
    let mut server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let payloads: [&[u8]; 5] = [b"", b"{}", b"{\"10\":\"h\"}", b"[]", b"{\"2\":false,\"3\":false}"];
    let mut id = 3u16;
    for command in 2u8..=255 {
        for payload in payloads {
            // LOCK may legitimately wait, and a status byte is a reply, not a
            // request; every other byte must get exactly one reply.
            if command == cmd::LOCK || (status::OK..=status::LOCKED).contains(&command) {
                continue;
            }
            conn.send_frame(&canhazdb_core::frame::Frame::new(id, command, payload.to_vec()))
                .await;
            let reply = conn.reply_within(id, Duration::from_secs(5)).await;
            match reply {
                Ok(reply) => assert!(
                    reply.status >= status::OK && reply.status <= status::LOCKED,
                    "command {command} payload {:?}: the reply must carry a status, observed {}",
                    String::from_utf8_lossy(payload),
                    reply.describe()
                ),
                Err(error) => panic!(
                    "command {command} payload {:?}: no reply ({error})",
                    String::from_utf8_lossy(payload)
                ),
            }
            id += 1;
        }
    }
    serves_normally(&mut server).await;
}

#[tokio::test]
async fn truncated_frames_and_id_only_frames() {
    let mut server = TestServer::start().await;

    // A frame cut short, then the connection closed.
    {
        let mut conn = RawConn::connect(server.addr()).await;
        conn.send_raw(b"\x05\x00\x20{\"10\":\"trunc").await;
    }
    serves_normally(&mut server).await;

    // Only the two id bytes, then close.
    {
        let mut conn = RawConn::connect(server.addr()).await;
        conn.send_raw(&[0x07, 0x00]).await;
    }
    serves_normally(&mut server).await;

    // Id bytes and a terminator, no command byte; then a valid frame on the
    // same connection. The server must survive; whatever it does with this
    // connection, a new one works.
    {
        let mut conn = RawConn::connect(server.addr()).await;
        conn.send_raw(&[0x07, 0x00, 0x01]).await;
        conn.send(8, cmd::COUNT, Some(&json!({"10": "trunc"}))).await;
        match conn.reply_within(8, Duration::from_secs(2)).await {
            Ok(reply) => eprintln!("after an id-only frame the next request got {}", reply.describe()),
            Err(error) => eprintln!("after an id-only frame the next request got no reply: {error}"),
        }
    }
    serves_normally(&mut server).await;

    // Half a frame, a pause, the rest: must be answered normally.
    {
        let mut conn = RawConn::connect(server.addr()).await;
        conn.send_raw(b"\x09\x00\x1f{\"10\":").await;
        sleep(Duration::from_millis(200)).await;
        conn.send_raw(b"\"trunc\"}\x01").await;
        conn.reply_to(9).await.expect(status::OK);
    }
    serves_normally(&mut server).await;
}

/// Writes `total` bytes of 'x' with no terminator, ignoring write errors,
/// while collecting what the server sends back until it closes.
async fn flood_without_terminator(
    server: &TestServer,
    total: usize,
) -> (Vec<canhazdb_core::frame::Frame>, bool) {
    let mut conn = RawConn::connect(server.addr()).await;
    let stream = conn.stream_mut();
    let (mut read, mut write) = tokio::io::split(stream);
    let writer = async {
        let _ = write.write_all(&[0x0a, 0x00, cmd::POST]).await;
        let chunk = vec![b'x'; 256 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            if timeout(Duration::from_secs(10), write.write_all(&chunk[..n]))
                .await
                .map(|r| r.is_err())
                .unwrap_or(true)
            {
                break;
            }
            sent += n;
        }
    };
    let reader = async {
        let mut received = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(20);
        let closed = loop {
            match tokio::time::timeout_at(deadline, read.read(&mut buffer)).await {
                Ok(Ok(0)) => break true,
                Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
                Ok(Err(_)) => break true,
                Err(_) => break false,
            }
        };
        (received, closed)
    };
    let ((), (received, closed)) = tokio::join!(writer, reader);
    let mut bytes = bytes::BytesMut::from(&received[..]);
    let mut decoder = canhazdb_core::frame::FrameDecoder::default();
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = decoder.decode(&mut bytes) {
        frames.push(frame);
    }
    (frames, closed)
}

#[tokio::test]
async fn a_20_mb_stream_without_terminator_is_refused_and_closed() {
    let mut server = TestServer::start().await;
    // Another connection, opened before, must keep working throughout.
    let mut bystander = RawConn::connect(server.addr()).await;
    bystander.post("flood", json!({"id": "before"})).await;

    // ... and while the flood is going on.
    let during = async {
        for i in 0..10 {
            bystander
                .post("flood", json!({"id": format!("during-{i}")}))
                .await;
            sleep(Duration::from_millis(20)).await;
        }
    };
    let ((frames, closed), ()) = tokio::join!(flood_without_terminator(&server, 20 * 1024 * 1024), during);
    let described: Vec<String> = frames.iter().map(describe_frame).collect();
    assert!(
        frames.iter().any(|f| f.command == status::BAD_REQUEST),
        "expected STATUS_BAD_REQUEST (121) for a frame over 16 MiB, observed frames {described:?} (closed: {closed})"
    );
    for frame in frames.iter().filter(|f| f.command == status::BAD_REQUEST) {
        if !frame.payload.is_empty() {
            let payload: serde_json::Value = serde_json::from_slice(&frame.payload).unwrap_or_else(|e| {
                panic!("BAD_REQUEST payload is not JSON ({e}): {}", describe_frame(frame))
            });
            assert!(
                payload["100"].is_string(),
                "ERROR must be a string: {}",
                describe_frame(frame)
            );
        }
    }
    assert!(
        closed,
        "the server must close a connection after an oversized frame; frames {described:?}"
    );

    bystander.post("flood", json!({"id": "after"})).await;
    assert_eq!(bystander.count("flood", json!({})).await, 12);
    serves_normally(&mut server).await;
}

#[tokio::test]
async fn max_frame_bytes_option_is_honoured() {
    let mut server = TestServer::start_with(&["--max-frame-bytes", "4096"]).await;
    let mut conn = RawConn::connect(server.addr()).await;
    // Well under the limit: fine.
    let small = "s".repeat(1000);
    conn.post("limited", json!({"text": small})).await;

    // A frame of 4000 bytes in all, just under the 4096 limit: fine.
    let wrapper = serde_json::to_vec(&json!({"10": "limited", "20": {"text": ""}})).unwrap();
    let near = "n".repeat(4000 - 4 - wrapper.len());
    let id = conn.fresh_id();
    let payload = json!({"10": "limited", "20": {"text": near}});
    assert_eq!(serde_json::to_vec(&payload).unwrap().len() + 4, 4000);
    conn.send(id, cmd::POST, Some(&payload)).await;
    conn.reply_to(id).await.expect(status::CREATED);

    // Well over the limit, without terminator: refused and closed.
    let (frames, closed) = flood_without_terminator(&server, 64 * 1024).await;
    let described: Vec<String> = frames.iter().map(describe_frame).collect();
    assert!(
        frames.iter().any(|f| f.command == status::BAD_REQUEST),
        "expected STATUS_BAD_REQUEST for a frame over --max-frame-bytes 4096, observed {described:?}"
    );
    assert!(closed, "the connection must be closed: {described:?}");

    // A complete frame over the limit is refused too.
    let mut big = RawConn::connect(server.addr()).await;
    let text = "b".repeat(10_000);
    big.send(
        5,
        cmd::POST,
        Some(&json!({"10": "limited", "20": {"text": text}})),
    )
    .await;
    let frames = big.frames_until_closed(Duration::from_secs(5)).await;
    assert!(
        frames.iter().any(|f| f.command == status::BAD_REQUEST),
        "a 10 kB frame with --max-frame-bytes 4096: {:?}",
        frames.iter().map(describe_frame).collect::<Vec<_>>()
    );
    assert_eq!(
        conn.count("limited", json!({})).await,
        2,
        "the big POST must not be stored"
    );
    serves_normally(&mut server).await;
}

fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

#[tokio::test]
async fn ten_thousand_connections_opened_and_dropped() {
    let mut server = TestServer::start().await;
    let addr = server.addr();
    let pid = server.pid().expect("running");
    {
        // Warm-up so lazily opened files are counted in the baseline.
        let mut conn = RawConn::connect(addr).await;
        conn.post("storm", json!({"v": 0})).await;
    }
    sleep(Duration::from_millis(200)).await;
    let baseline = open_fds(pid);
    eprintln!("server file descriptors before the storm: {baseline:?}");

    let permits = Arc::new(Semaphore::new(200));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10_000u32 {
        let permit = permits.clone().acquire_owned().await.expect("semaphore");
        tasks.spawn(async move {
            let _permit = permit;
            let stream = match timeout(Duration::from_secs(10), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return Err(format!("connection {i}: {error}")),
                Err(_) => return Err(format!("connection {i}: connect timed out")),
            };
            let local_addr = stream.local_addr().ok();
            let mut stream = tls::wrap(stream)
                .await
                .map_err(|error| format!("connection {i}: {error}"))?;
            match i % 3 {
                // Drop at once.
                0 => {}
                // Wait for READY, then drop.
                1 => {
                    let mut ready = [0u8; 4];
                    match timeout(Duration::from_secs(10), stream.read_exact(&mut ready)).await {
                        Ok(Ok(_)) if ready == [2, 0, cmd::READY, 1] => {}
                        other => {
                            return Err(format!(
                                "connection {i} (from {:?}): connected, but no READY within 10 s: \
                                 {other:?}, bytes {ready:?}. If `ss -tan` shows this socket ESTAB on \
                                 the client side only, the server's listen backlog overflowed \
                                 and the handshake was dropped",
                                local_addr
                            ))
                        }
                    }
                }
                // Send half a request, then drop.
                _ => {
                    let _ = stream.write_all(b"\x03\x00\x20{\"10\":").await;
                }
            }
            Ok(())
        });
        while let Some(done) = tasks.try_join_next() {
            done.expect("task").unwrap_or_else(|e| panic!("{e}"));
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task").unwrap_or_else(|e| panic!("{e}"));
    }
    server.assert_alive();
    serves_normally(&mut server).await;

    // The server must not keep the dropped connections' sockets.
    if let Some(baseline) = baseline {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = open_fds(pid).unwrap_or(0);
            eprintln!("server file descriptors after the storm: {now}");
            if now <= baseline + 50 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server holds {now} file descriptors after 10,000 dropped connections (baseline {baseline})"
            );
            sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A slow client that never reads its replies must not stall other clients.
#[tokio::test]
async fn a_client_that_never_reads_does_not_stall_others() {
    let mut server = TestServer::start().await;
    let mut slow = tls::connect(server.addr()).await.expect("connect");
    // Ask for big replies and never read them.
    let mut setup = RawConn::connect(server.addr()).await;
    let blob = "z".repeat(50_000);
    for i in 0..20 {
        setup.post("slow", json!({"i": i, "blob": blob})).await;
    }
    let mut wire = bytes::BytesMut::new();
    for id in 3..63u16 {
        canhazdb_core::frame::Frame::new(id, cmd::GET, br#"{"10":"slow"}"#.to_vec()).encode(&mut wire);
    }
    let _ = timeout(Duration::from_secs(5), slow.write_all(&wire)).await;

    // While the server works through those GETs, others are still served
    // (slower: a debug build on a small machine burns CPU on 60 MB of JSON).
    let mut other = RawConn::connect(server.addr()).await;
    assert_eq!(other.count("slow", json!({})).await, 20);

    // Once that work is done, the unread replies sit in the slow socket's
    // buffers; that must not hold up reads or writes of anyone else.
    sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    assert_eq!(other.count("slow", json!({})).await, 20);
    other.post("slow", json!({"i": 20})).await;
    other
        .write_ids(
            cmd::PATCH,
            "slow",
            json!({"20": {"touched": true}, "40": {"i": 20}}),
        )
        .await;
    assert_eq!(other.get("slow", json!({"40": {"i": 20}})).await.len(), 1);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "a client that does not read its replies stalled another client for {elapsed:?}"
    );
    drop(slow);
    serves_normally(&mut server).await;
}

/// A connection closed with requests in flight (including a waiting LOCK).
#[tokio::test]
async fn closing_with_requests_in_flight() {
    let mut server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let held = holder.lock("inflight").await;
    for _ in 0..20 {
        let mut conn = RawConn::connect(server.addr()).await;
        conn.send(3, cmd::LOCK, Some(&json!({"66": "inflight"}))).await;
        conn.send(4, cmd::POST, Some(&json!({"10": "inflight", "20": {"v": 1}})))
            .await;
        conn.send(5, cmd::GET, Some(&json!({"10": "inflight"}))).await;
        drop(conn);
    }
    sleep(Duration::from_millis(200)).await;
    holder.unlock(&held).await;
    // The abandoned LOCKs must not keep the key: a new LOCK is granted.
    let mut fresh = RawConn::connect(server.addr()).await;
    let lock = fresh.lock("inflight").await;
    fresh.unlock(&lock).await;
    serves_normally(&mut server).await;
    match fresh.next_frame(Duration::from_millis(100)).await {
        Err(ReadError::Timeout) => {}
        Ok(frame) => panic!("unexpected frame {}", describe_frame(&frame)),
        Err(error) => panic!("{error}"),
    }
}

/// A client that sends writes and never reads the replies does not keep the
/// collection's lock: once its outgoing queue is full, each write's lock is
/// released before its reply waits for room.
#[tokio::test]
async fn a_client_that_does_not_read_its_replies_does_not_keep_the_lock() {
    let server = TestServer::start().await;
    let mut setup = RawConn::connect(server.addr()).await;
    setup
        .post("big", json!({"id": "a", "pad": "x".repeat(8000)}))
        .await;
    setup.post("bp", json!({"id": "a"})).await;

    let mut silent = RawConn::connect(server.addr()).await;
    let mut bytes = Vec::new();
    for n in 0..6000u32 {
        let id = (10 + n % 60000) as u16;
        let (command, payload) = if n % 8 == 7 {
            (cmd::PATCH, json!({"10": "bp", "20": {"n": n}}))
        } else {
            // Large replies fill the connection's queue quickly.
            (cmd::GET, json!({"10": "big"}))
        };
        let frame = canhazdb_core::frame::Frame::new(id, command, serde_json::to_vec(&payload).unwrap());
        bytes.extend(frame.to_bytes());
    }
    // The server stops reading from this connection at some point.
    let _ = timeout(Duration::from_secs(10), silent.stream_mut().write_all(&bytes)).await;
    sleep(Duration::from_secs(1)).await;

    let mut other = RawConn::connect(server.addr()).await;
    let lock = other
        .try_call(cmd::LOCK, json!({"66": "bp"}), Duration::from_secs(3))
        .await;
    assert!(
        matches!(lock, Ok(ref reply) if reply.status == status::OK),
        "LOCK on a collection written by a client that does not read: {:?}",
        lock.map(|reply| reply.describe())
    );
}
