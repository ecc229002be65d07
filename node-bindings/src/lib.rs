//! `canhazdb` for Node.js: the project's own Rust client and server, exposed
//! to JavaScript with napi-rs.
//!
//! * [`createServer`](server::create_server) runs a canhazdb node inside the
//!   Node.js process, on a tokio runtime of its own.
//! * [`createClient`](client::create_client) connects the native client
//!   (`canhazdb::client`); its promises settle on the JS thread, and
//!   notifications reach JS handlers through thread-safe functions.
//!
//! * [`createCertificates`](certs::create_certificates) makes a CA and
//!   certificates in memory, for mutual TLS in tests and development.
//!
//! Documents cross the boundary as JavaScript objects: napi's serde
//! conversion on the way out, [`convert`] (JSON.stringify's rules) on the
//! way in. Failures become `Error`s with `status` and `code` ([`error`]).

// napi-derive registers the exports only outside `cfg(test)`, so a test
// build (`cargo clippy --all-targets`) would see them as dead code.
#![cfg_attr(test, allow(dead_code))]

use std::future::Future;

use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::Env;
use napi_derive::napi;

mod certs;
mod client;
mod convert;
mod error;
mod keepalive;
mod server;

use error::Failure;

/// STATUS_OK: a read, count, update, lock or unlock succeeded.
#[napi]
pub const STATUS_OK: u32 = 120;
/// STATUS_BAD_REQUEST: the request was invalid (the message says why).
#[napi]
pub const STATUS_BAD_REQUEST: u32 = 121;
/// STATUS_NOT_FOUND: an unknown command, or an unlock of a lock not held.
#[napi]
pub const STATUS_NOT_FOUND: u32 = 122;
/// STATUS_CREATED: a document was stored.
#[napi]
pub const STATUS_CREATED: u32 = 123;
/// STATUS_SERVER_ERROR: the server failed.
#[napi]
pub const STATUS_SERVER_ERROR: u32 = 124;
/// STATUS_SERVER_UNHEALTHY: the node cannot serve external requests now.
#[napi]
pub const STATUS_SERVER_UNHEALTHY: u32 = 125;
/// STATUS_SERVER_CLOSED: the server is shutting down.
#[napi]
pub const STATUS_SERVER_CLOSED: u32 = 126;
/// STATUS_LOCKED: the collection is locked and the write used `lockStrategy: 'fail'`.
#[napi]
pub const STATUS_LOCKED: u32 = 127;
/// `lockStrategy` value: fail at once with STATUS_LOCKED when the collection is locked.
#[napi]
pub const LOCK_STRATEGY_FAIL: u32 = 64;
/// `lockStrategy` value: wait for the unlock (the default).
#[napi]
pub const LOCK_STRATEGY_WAIT: u32 = 65;

/// Runs `future` on napi's tokio runtime and returns a promise for it: on
/// success `convert` (on the JS thread) turns the output into the resolved
/// value; a [`Failure`] rejects the promise with a proper JS `Error`.
pub(crate) fn settle<'env, T, V, F, C>(
    env: &'env Env,
    future: F,
    convert: C,
) -> napi::Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    F: Future<Output = Result<T, Failure>> + Send + 'static,
    C: FnOnce(&'env Env, T) -> napi::Result<V> + 'static,
{
    env.spawn_future_with_callback(
        async move { Ok(future.await) },
        move |env, outcome| match outcome {
            Ok(value) => convert(env, value),
            Err(failure) => Err(failure.into_napi(env)),
        },
    )
}

/// [`settle`] for outputs that are already JS-convertible.
pub(crate) fn settle_value<'env, T, F>(env: &'env Env, future: F) -> napi::Result<PromiseRaw<'env, T>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = Result<T, Failure>> + Send + 'static,
{
    settle(env, future, |_, value| Ok(value))
}
