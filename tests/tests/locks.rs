//! Locks (spec section 3, "Locks"; section 6, system.locks).

use std::time::Duration;

use canhazdb_tests::raw::lock_id_of;
use canhazdb_tests::{cmd, status, RawConn, TestServer, NODE_NAME, QUIET};
use serde_json::{json, Value};
use tokio::time::{sleep, timeout, Instant};

/// Gives a request time to reach the server and queue.
async fn settle() {
    sleep(Duration::from_millis(150)).await;
}

#[tokio::test]
async fn lock_and_unlock_reply_with_the_lock_id() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let reply = conn.call(cmd::LOCK, json!({"66": "k"})).await.expect(status::OK);
    let lock_id = lock_id_of(&reply);
    let keys: Vec<&String> = reply
        .payload
        .as_ref()
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        keys,
        vec!["62"],
        "LOCK replies {{\"62\": id}}: {}",
        reply.describe()
    );
    let unlock = conn
        .call(cmd::UNLOCK, json!({"62": lock_id}))
        .await
        .expect(status::OK);
    assert_eq!(
        unlock.payload,
        Some(json!({"62": lock_id})),
        "{}",
        unlock.describe()
    );
    // The key is free again.
    let again = conn.lock("k").await;
    assert_ne!(again, lock_id);
    conn.unlock(&again).await;
}

#[tokio::test]
async fn waiting_locks_are_granted_first_come_first_served() {
    let server = TestServer::start().await;
    let mut first = RawConn::connect(server.addr()).await;
    let held = first.lock("fifo").await;

    let mut waiters = Vec::new();
    for n in 0..4u16 {
        let mut conn = RawConn::connect(server.addr()).await;
        let id = 50 + n;
        conn.send(id, cmd::LOCK, Some(&json!({"66": "fifo"}))).await;
        settle().await;
        waiters.push((conn, id));
    }
    for (conn, id) in waiters.iter_mut() {
        conn.assert_no_reply(*id, Duration::from_millis(50), "the key is held")
            .await;
    }

    let mut previous = held.clone();
    first.unlock(&held).await;
    for index in 0..waiters.len() {
        let (conn, id) = &mut waiters[index];
        let granted = conn.reply_to(*id).await.expect(status::OK);
        let lock_id = lock_id_of(&granted);
        assert_ne!(lock_id, previous);
        for (later, later_id) in waiters[index + 1..].iter_mut() {
            later
                .assert_no_reply(*later_id, QUIET / 3, "an earlier LOCK holds the key")
                .await;
        }
        let (conn, _) = &mut waiters[index];
        conn.unlock(&lock_id).await;
        previous = lock_id;
    }
}

#[tokio::test]
async fn locks_on_different_keys_do_not_wait_for_each_other() {
    let server = TestServer::start().await;
    let mut a = RawConn::connect(server.addr()).await;
    let mut b = RawConn::connect(server.addr()).await;
    let first = a.lock("key-one").await;
    let second = b.lock("key-two").await;
    assert_ne!(first, second);
    a.unlock(&first).await;
    b.unlock(&second).await;
}

#[tokio::test]
async fn fail_strategy_gives_locked_at_once_for_every_write() {
    let server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let mut other = RawConn::connect(server.addr()).await;
    other.post("lf", json!({"id": "a", "v": 1})).await;
    let held = holder.lock("lf").await;

    for (command, extra) in [
        (cmd::POST, json!({"20": {"id": "b", "v": 2}})),
        (cmd::PUT, json!({"20": {"v": 3}})),
        (cmd::PATCH, json!({"20": {"v": 4}})),
        (cmd::DELETE, json!({})),
    ] {
        let mut payload = extra;
        payload["10"] = json!("lf");
        payload["63"] = json!(64);
        let started = Instant::now();
        let reply = timeout(Duration::from_secs(2), other.call(command, payload))
            .await
            .unwrap_or_else(|_| panic!("command {command} with LOCK_STRATEGY_FAIL waited for the lock"));
        assert!(started.elapsed() < Duration::from_secs(2));
        reply.expect_error(status::LOCKED);
    }
    // A LOCK_ID that is not the holder's does not get past the lock.
    let reply = other
        .call(
            cmd::PATCH,
            json!({"10": "lf", "20": {"v": 6}, "62": "not-the-holders-lock", "63": 64}),
        )
        .await;
    reply.expect_error(status::LOCKED);
    assert_eq!(other.get("lf", json!({})).await, vec![json!({"id": "a", "v": 1})]);
    holder.unlock(&held).await;
    // Unlocked, the same write succeeds.
    other
        .call(cmd::PATCH, json!({"10": "lf", "20": {"v": 5}, "63": 64}))
        .await
        .expect(status::OK);
}

#[tokio::test]
async fn wait_strategy_default_and_explicit_waits_until_unlock() {
    let server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let mut writer = RawConn::connect(server.addr()).await;
    writer.post("lw", json!({"id": "a", "v": 0})).await;

    for strategy in [None, Some(65)] {
        let held = holder.lock("lw").await;
        let requests = [
            (cmd::PATCH, json!({"20": {"patched": true}, "40": {"id": "a"}})),
            (cmd::POST, json!({"20": {"id": format!("new-{strategy:?}")}})),
        ];
        let mut ids = Vec::new();
        for (command, extra) in requests {
            let mut payload = extra;
            payload["10"] = json!("lw");
            if let Some(strategy) = strategy {
                payload["63"] = json!(strategy);
            }
            let id = writer.fresh_id();
            writer.send(id, command, Some(&payload)).await;
            ids.push((id, command));
        }
        for (id, _) in &ids {
            writer
                .assert_no_reply(*id, QUIET, "the collection is locked")
                .await;
        }
        // Nothing was written while locked.
        assert_eq!(
            holder.count("lw", json!({})).await,
            if strategy.is_none() { 1 } else { 2 }
        );
        holder.unlock(&held).await;
        for (id, command) in ids {
            let want = if command == cmd::POST {
                status::CREATED
            } else {
                status::OK
            };
            writer.reply_to(id).await.expect(want);
        }
    }
    assert_eq!(
        writer.get("lw", json!({"40": {"patched": true}})).await,
        vec![json!({"id": "a", "v": 0, "patched": true})]
    );
    assert_eq!(writer.count("lw", json!({})).await, 3);
}

/// Writes waiting for a lock are in line like LOCKs: a LOCK that arrives
/// after them is granted after them, not before.
#[tokio::test]
async fn writes_waiting_for_a_lock_are_served_before_a_later_lock() {
    let server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let mut writer = RawConn::connect(server.addr()).await;
    let mut later = RawConn::connect(server.addr()).await;
    writer.post("lq", json!({"id": "a", "v": 0})).await;
    writer.post("lq", json!({"id": "b", "v": 0})).await;
    writer.post("lq", json!({"id": "c", "v": 0})).await;

    let held = holder.lock("lq").await;
    let requests = [
        (
            cmd::POST,
            json!({"10": "lq", "20": {"id": "new"}}),
            status::CREATED,
        ),
        (
            cmd::PUT,
            json!({"10": "lq", "20": {"v": 1}, "40": {"id": "a"}}),
            status::OK,
        ),
        (
            cmd::PATCH,
            json!({"10": "lq", "20": {"p": true}, "40": {"id": "c"}}),
            status::OK,
        ),
        (cmd::DELETE, json!({"10": "lq", "40": {"id": "b"}}), status::OK),
    ];
    let mut waiting = Vec::new();
    for (command, payload, want) in requests {
        let id = writer.fresh_id();
        writer.send(id, command, Some(&payload)).await;
        waiting.push((id, want));
    }
    settle().await;
    later.send(90, cmd::LOCK, Some(&json!({"66": "lq"}))).await;
    settle().await;

    holder.unlock(&held).await;
    let granted = later.reply_to(90).await.expect(status::OK);
    // The later LOCK now holds the key: had any write queued behind it, it
    // could not finish until that lock is released.
    for (id, want) in waiting {
        writer
            .reply_within(id, Duration::from_secs(5))
            .await
            .unwrap_or_else(|error| panic!("a write queued before the LOCK did not finish: {error:?}"))
            .expect(want);
    }
    assert_eq!(
        holder.get("lq", json!({"43": "asc(id)"})).await,
        vec![
            json!({"id": "a", "v": 1}),
            json!({"id": "c", "v": 0, "p": true}),
            json!({"id": "new"})
        ]
    );
    later.unlock(&lock_id_of(&granted)).await;
}

/// A write holds the collection's lock only for its duration: once it is
/// answered, system.locks no longer shows it.
#[tokio::test]
async fn a_write_leaves_no_lock_behind_once_answered() {
    let server = TestServer::start().await;
    let mut conn = RawConn::connect(server.addr()).await;
    let mut holder = RawConn::connect(server.addr()).await;
    conn.post("ll", json!({"id": "a"})).await;
    for round in 0..20 {
        let (command, payload) = match round % 3 {
            0 => (cmd::PUT, json!({"10": "ll", "20": {"round": round}})),
            1 => (cmd::PATCH, json!({"10": "ll", "20": {"patched": round}})),
            _ => (cmd::DELETE, json!({"10": "ll", "40": {"id": "none"}})),
        };
        conn.call(command, payload).await.expect(status::OK);
        assert_eq!(
            conn.get("system.locks", json!({})).await,
            Vec::<Value>::new(),
            "round {round}"
        );
        // Nor does a write that may not wait find the collection locked.
        let fail_at_once = json!({"10": "ll", "20": {"round": round}, "63": 64});
        conn.call(cmd::POST, fail_at_once).await.expect(status::CREATED);
    }
    // A POST that waited in line for the lock, too.
    let held = holder.lock("ll").await;
    let id = conn.fresh_id();
    conn.send(id, cmd::POST, Some(&json!({"10": "ll", "20": {"id": "waited"}})))
        .await;
    settle().await;
    holder.unlock(&held).await;
    conn.reply_to(id).await.expect(status::CREATED);
    assert_eq!(conn.get("system.locks", json!({})).await, Vec::<Value>::new());
    let fail_at_once = json!({"10": "ll", "20": {"after": "waited"}, "63": 64});
    conn.call(cmd::POST, fail_at_once).await.expect(status::CREATED);
    let fail_at_once = json!({"10": "ll", "20": {"after": "waited"}, "40": {"id": "a"}, "63": 64});
    conn.call(cmd::PATCH, fail_at_once).await.expect(status::OK);
}

#[tokio::test]
async fn a_write_carrying_the_holders_lock_id_proceeds() {
    let server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let held = holder.lock("lh").await;
    let quick = Duration::from_secs(2);
    let posted = timeout(
        quick,
        holder.call(
            cmd::POST,
            json!({"10": "lh", "20": {"id": "a", "v": 1}, "62": held}),
        ),
    )
    .await
    .expect("POST with the holder's LOCK_ID must not wait");
    posted.expect(status::CREATED);
    for (command, extra) in [
        (cmd::PUT, json!({"20": {"v": 2}})),
        (cmd::PATCH, json!({"20": {"w": 3}})),
        (cmd::DELETE, json!({})),
    ] {
        let mut payload = extra;
        payload["10"] = json!("lh");
        payload["62"] = held.clone();
        payload["63"] = json!(64);
        let reply = timeout(quick, holder.call(command, payload))
            .await
            .unwrap_or_else(|_| panic!("command {command} with the holder's LOCK_ID waited"));
        reply.expect(status::OK);
    }
    assert_eq!(holder.count("lh", json!({})).await, 0);
    holder.unlock(&held).await;
}

/// The spec ties proceeding to carrying the holder's LOCK_ID, not to the
/// connection: another connection that carries it proceeds too.
#[tokio::test]
async fn the_holders_lock_id_lets_a_write_through_from_another_connection() {
    let server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let mut helper = RawConn::connect(server.addr()).await;
    let held = holder.lock("lx").await;
    let reply = timeout(
        Duration::from_secs(2),
        helper.call(
            cmd::POST,
            json!({"10": "lx", "20": {"id": "a"}, "62": held, "63": 64}),
        ),
    )
    .await
    .expect("a POST carrying the holder's LOCK_ID must not wait");
    reply.expect(status::CREATED);
    holder.unlock(&held).await;
}

#[tokio::test]
async fn reads_are_never_blocked_and_other_collections_are_free() {
    let server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let mut other = RawConn::connect(server.addr()).await;
    other.post("lr", json!({"id": "a"})).await;
    let held = holder.lock("lr").await;
    let quick = Duration::from_secs(2);
    let documents = timeout(quick, other.get("lr", json!({"40": {"id": "a"}})))
        .await
        .expect("GET on a locked collection must not wait");
    assert_eq!(documents, vec![json!({"id": "a"})]);
    let n = timeout(quick, other.count("lr", json!({})))
        .await
        .expect("COUNT on a locked collection must not wait");
    assert_eq!(n, 1);
    // A write to another collection is not held up.
    timeout(quick, other.post("lr-other", json!({"v": 1})))
        .await
        .expect("a write to another collection must not wait");
    timeout(quick, other.post("lr.sub", json!({"v": 1})))
        .await
        .expect("a write to another collection must not wait");
    holder.unlock(&held).await;
}

#[tokio::test]
async fn closing_the_holders_connection_releases_its_locks() {
    let server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let mut waiter = RawConn::connect(server.addr()).await;
    let mut writer = RawConn::connect(server.addr()).await;
    holder.lock("lc").await;
    holder.lock("lc-second").await;

    waiter.send(40, cmd::LOCK, Some(&json!({"66": "lc"}))).await;
    writer
        .send(
            41,
            cmd::POST,
            Some(&json!({"10": "lc-second", "20": {"id": "w"}})),
        )
        .await;
    waiter
        .assert_no_reply(40, QUIET, "held by the first connection")
        .await;
    writer
        .assert_no_reply(41, Duration::from_millis(50), "held by the first connection")
        .await;

    drop(holder);
    let granted = waiter.reply_to(40).await.expect(status::OK);
    writer.reply_to(41).await.expect(status::CREATED);
    waiter.unlock(&lock_id_of(&granted)).await;
}

#[tokio::test]
async fn a_queued_lock_whose_connection_closes_is_skipped() {
    let server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let held = holder.lock("lq").await;
    let mut leaver = RawConn::connect(server.addr()).await;
    leaver.send(60, cmd::LOCK, Some(&json!({"66": "lq"}))).await;
    settle().await;
    let mut stayer = RawConn::connect(server.addr()).await;
    stayer.send(61, cmd::LOCK, Some(&json!({"66": "lq"}))).await;
    settle().await;
    drop(leaver);
    settle().await;
    holder.unlock(&held).await;
    let granted = stayer.reply_to(61).await.expect(status::OK);
    stayer.unlock(&lock_id_of(&granted)).await;
    // The key is free afterwards.
    let again = holder.lock("lq").await;
    holder.unlock(&again).await;
}

/// system.locks: one document per held or queued lock, with id, path, origin.
#[tokio::test]
async fn system_locks_lists_held_and_queued_locks() {
    let server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    let mut queued = RawConn::connect(server.addr()).await;
    let mut observer = RawConn::connect(server.addr()).await;

    assert_eq!(observer.get("system.locks", json!({})).await, Vec::<Value>::new());
    let held = holder.lock("sl").await;
    queued.send(70, cmd::LOCK, Some(&json!({"66": "sl"}))).await;
    settle().await;

    let locks = observer.get("system.locks", json!({})).await;
    assert_eq!(locks.len(), 2, "one held and one queued lock: {locks:?}");
    for lock in &locks {
        assert_eq!(lock["path"], json!("sl"), "{lock}");
        assert_eq!(lock["origin"], json!(NODE_NAME), "{lock}");
        assert!(lock["id"].is_string() || lock["id"].is_number(), "{lock}");
    }
    assert!(
        locks.iter().any(|lock| lock["id"] == held),
        "the held lock's id {held} must be listed: {locks:?}"
    );
    assert_ne!(locks[0]["id"], locks[1]["id"]);
    let by_path = observer.get("system.locks", json!({"40": {"path": "sl"}})).await;
    assert_eq!(by_path.len(), 2, "system.locks is queried like any collection");

    holder.unlock(&held).await;
    let granted = lock_id_of(&queued.reply_to(70).await.expect(status::OK));
    let locks = observer.get("system.locks", json!({})).await;
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["id"], granted);
    assert_eq!(locks[0]["path"], json!("sl"));
    assert_eq!(locks[0]["origin"], json!(NODE_NAME));

    queued.unlock(&granted).await;
    assert_eq!(observer.get("system.locks", json!({})).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_stop_does_not_wait_for_locks_that_will_never_be_granted() {
    let mut server = TestServer::start().await;
    let mut holder = RawConn::connect(server.addr()).await;
    holder.lock("stopping").await;
    // A LOCK and a PATCH queued behind the held lock.
    let mut waiter = RawConn::connect(server.addr()).await;
    let lock = waiter.fresh_id();
    waiter
        .send(lock, cmd::LOCK, Some(&json!({"66": "stopping"})))
        .await;
    let patch = waiter.fresh_id();
    waiter
        .send(
            patch,
            cmd::PATCH,
            Some(&json!({"10": "stopping", "20": {"a": 1}})),
        )
        .await;
    settle().await;

    let pid = server.pid().expect("the server runs");
    // SAFETY: kill(2) with a pid this test started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) }, 0);
    // The node waits up to 30 s for requests in flight; these two must not
    // be what it waits for.
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.is_running() && Instant::now() < deadline {
        sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !server.is_running(),
        "the node was still stopping 15 s after SIGTERM; log:\n{}",
        server.log_tail(4000)
    );
    // Both waits ended with the server: STATUS_SERVER_CLOSED or the close.
    for frame in waiter.frames_until_closed(Duration::from_secs(5)).await {
        assert_eq!(frame.command, status::SERVER_CLOSED, "{frame:?}");
    }
}
