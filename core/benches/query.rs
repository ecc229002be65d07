//! Query-language throughput.
//!
//! `query_eval_5_predicates` is the number that matters: how many documents
//! per second one core can filter with a typical five-predicate query
//! (equality, `$gt`, `$in`, `$exists`, dotted `$lt`). The documents are
//! ~100–200-byte JSON objects shaped like application data, generated
//! deterministically so runs are comparable.

use std::hint::black_box;

use canhazdb_core::query::Query;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};

const DOCUMENT_COUNT: usize = 10_000;

/// A tiny deterministic PRNG (xorshift64*), so the bench needs no `rand`.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const CITIES: &[&str] = &[
    "Berlin", "Paris", "Lisbon", "Oslo", "Rome", "Madrid", "Vienna", "Prague",
];
const ROLES: &[&str] = &["user", "admin", "guest", "owner"];

fn documents() -> Vec<Value> {
    let mut random = Xorshift(0x9E37_79B9_7F4A_7C15);
    (0..DOCUMENT_COUNT)
        .map(|n| {
            let mut document = json!({
                "id": format!("{:016x}-{:04x}", random.next(), n),
                "name": format!("user{}", random.below(100_000)),
                "age": 18 + random.below(60),
                "active": random.below(10) < 8,
                "role": ROLES[random.below(ROLES.len() as u64) as usize],
                "address": {"city": CITIES[random.below(CITIES.len() as u64) as usize], "zip": format!("{:05}", random.below(99_999))},
                "stats": {"visits": random.below(1_000), "score": random.below(10_000) as f64 / 100.0},
            });
            if random.below(4) != 0 {
                document["email"] = json!(format!("u{n}@example.com"));
            }
            document
        })
        .collect()
}

fn five_predicate_query() -> Value {
    json!({
        "active": true,
        "age": {"$gt": 25},
        "address.city": {"$in": ["Berlin", "Paris", "Lisbon", "Oslo", "Rome"]},
        "email": {"$exists": true},
        "stats.visits": {"$lt": 800},
    })
}

fn query_benches(c: &mut Criterion) {
    let documents = documents();
    let sizes: Vec<usize> = documents.iter().map(|d| d.to_string().len()).collect();
    let query = Query::parse(&five_predicate_query()).unwrap();
    let matching = documents.iter().filter(|d| query.matches(d)).count();
    eprintln!(
        "{} documents, {}..{} bytes (mean {}), {} match",
        documents.len(),
        sizes.iter().min().unwrap(),
        sizes.iter().max().unwrap(),
        sizes.iter().sum::<usize>() / sizes.len(),
        matching
    );

    let mut group = c.benchmark_group("query");
    group.throughput(Throughput::Elements(documents.len() as u64));
    group.bench_function("query_eval_5_predicates", |b| {
        b.iter(|| {
            documents
                .iter()
                .filter(|document| query.matches(black_box(document)))
                .count()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("query");
    group.throughput(Throughput::Elements(1));
    let query_json = five_predicate_query();
    group.bench_function("query_parse_5_predicates", |b| {
        b.iter(|| Query::parse(black_box(&query_json)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, query_benches);
criterion_main!(benches);
