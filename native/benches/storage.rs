//! Storage engine load benchmark (not criterion: it measures one big run).
//!
//! ```text
//! cargo bench -p canhazdb --bench storage                  # 1,000,000 docs
//! STORAGE_BENCH_DOCS=100000 cargo bench -p canhazdb --bench storage
//! STORAGE_BENCH_DIR=/tmp/x STORAGE_BENCH_MODE=load-and-abort cargo bench ...  # then
//! STORAGE_BENCH_DIR=/tmp/x STORAGE_BENCH_MODE=open cargo bench ...            # open after kill
//! ```
//!
//! Modes: `full` (default: load with concurrent inserters, query, close,
//! time reopening), `load-and-abort` (load, then abort the process without
//! closing, like kill -9), `open` (time opening an existing store, query).
//! Prints figures; asserts only correctness of counts.

use std::time::{Duration, Instant};

use canhazdb::storage::{ReadRequest, Store, StoreOptions};
use canhazdb_core::query::{Order, Query};
use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn report_memory(when: &str) {
    let (rss, peak) = rss_mb();
    println!("memory {when}: RSS {rss:.1} MB (peak {peak:.1} MB)");
}

fn time<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = f();
    println!("{label}: {:?}", started.elapsed());
    result
}

async fn load(store: &Store, docs: usize, inserters: usize) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..inserters {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = worker;
            while n < docs {
                let city = ["Paris", "Oslo", "Lima", "Pune"][n % 4];
                let document = json!({
                    "id": format!("{:08x}-{n:010}", (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32),
                    "n": n,
                    "name": format!("user-{}", n % 1000),
                    "group": n % 10,
                    "active": n % 3 == 0,
                    "profile": {"age": n % 100, "city": city},
                });
                let replicas = vec![format!("node-{}", n % 3), format!("node-{}", (n + 1) % 3)];
                store.insert("people", document, replicas).await.expect("insert");
                n += inserters;
            }
        }));
    }
    let mut last_report = Instant::now();
    for task in tasks {
        task.await.expect("inserter");
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
        }
    }
    let elapsed = started.elapsed();
    println!(
        "inserted {docs} documents with {inserters} concurrent inserters in {elapsed:?}: {:.0} inserts/s",
        docs as f64 / elapsed.as_secs_f64()
    );
}

fn queries(store: &Store, docs: usize) {
    let all = Query::match_all();
    let count = time("count {} (O(1))", || store.count("people", &all, None).unwrap());
    assert_eq!(count as usize, docs);
    let node0 = |replicas: &[String]| replicas.first().map(String::as_str) == Some("node-0");
    time("count {} with replica filter", || {
        store.count("people", &all, Some(&node0)).unwrap()
    });
    let group = Query::parse(&json!({"group": 3})).unwrap();
    let n = time("count {group: 3} (index, exact)", || {
        store.count("people", &group, None).unwrap()
    });
    println!("  = {n}");
    let mixed = Query::parse(&json!({"group": 3, "active": true})).unwrap();
    let n = time("count {group: 3, active: true} (index + re-check)", || {
        store.count("people", &mixed, None).unwrap()
    });
    println!("  = {n}");
    let by_id = Query::parse(&json!({"id": format!("{:08x}-{:010}", 0u64, 0)})).unwrap();
    let found = time("find by id", || {
        store.find("people", &ReadRequest::new(&by_id)).unwrap()
    });
    assert_eq!(found.len(), 1);
    let range = Query::parse(&json!({"profile.age": {"$gte": 50}})).unwrap();
    let order = Order::parse(&json!("desc(profile.age)")).unwrap();
    let request = ReadRequest {
        query: &range,
        order: Some(&order),
        limit: Some(10),
        reported: None,
    };
    time("find age>=50 order desc(age) limit 10 (index stream)", || {
        store.find("people", &request).unwrap()
    });
    let order = Order::parse(&json!("asc(name) desc(n)")).unwrap();
    let request = ReadRequest {
        query: &all,
        order: Some(&order),
        limit: Some(10),
        reported: None,
    };
    time("find {} order asc(name) desc(n) limit 10 (scan + top-k)", || {
        store.find("people", &request).unwrap()
    });
    let name = Query::parse(&json!({"name": "user-7"})).unwrap();
    let found = time("find {name: user-7} (index)", || {
        store.find("people", &ReadRequest::new(&name)).unwrap()
    });
    println!("  = {} documents", found.len());
    report_memory("after queries");
}

fn main() {
    let docs = env_usize("STORAGE_BENCH_DOCS", 1_000_000);
    let inserters = env_usize("STORAGE_BENCH_INSERTERS", 256);
    let mode = std::env::var("STORAGE_BENCH_MODE").unwrap_or_else(|_| "full".to_owned());
    let temp;
    let dir = match std::env::var("STORAGE_BENCH_DIR") {
        Ok(dir) => std::path::PathBuf::from(dir),
        Err(_) => {
            temp = tempfile::tempdir().expect("tempdir");
            temp.path().to_path_buf()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("store at {}, mode {mode}", dir.display());

    if mode == "open" {
        let store = time("open existing store", || {
            Store::open(&dir, StoreOptions::default()).unwrap()
        });
        report_memory("after open");
        let count = store.count("people", &Query::match_all(), None).unwrap();
        println!("documents: {count}");
        queries(&store, count as usize);
        return;
    }

    let store = Store::open(&dir, StoreOptions::default()).unwrap();
    runtime.block_on(load(&store, docs, inserters));
    report_memory("after load");
    if mode == "load-and-abort" {
        println!("aborting without close (like kill -9)");
        std::process::abort();
    }
    queries(&store, docs);
    runtime.block_on(store.close()).unwrap();
    let size = std::fs::metadata(dir.join("canhazdb.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("file size: {:.1} MB", size as f64 / 1e6);
    for attempt in 1..=3 {
        let store = time(&format!("reopen #{attempt}"), || {
            Store::open(&dir, StoreOptions::default()).unwrap()
        });
        let count = store.count("people", &Query::match_all(), None).unwrap();
        assert_eq!(count as usize, docs);
        runtime.block_on(store.close()).unwrap();
    }
    report_memory("at end");
}
