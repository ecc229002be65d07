//! `canhazdb-bench`: throughput and latency of a canhazdb server; see
//! `src/bench/mod.rs` and `canhazdb-bench --help`.

#[path = "../bench/mod.rs"]
mod bench;

fn main() -> std::process::ExitCode {
    bench::main()
}
