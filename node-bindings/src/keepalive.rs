//! Keeping the Node.js event loop alive while a server or client is open.
//!
//! The server and the client run on tokio threads that Node.js knows
//! nothing about, so on their own they would not stop the process from
//! exiting. Like a listening `net.Server` or a connected `net.Socket`, an
//! open server or client holds a [`KeepAlive`]: a thread-safe function that
//! is never called and only exists to be a referenced libuv handle. It is
//! dropped on `close()` (from any thread) or `unref()`.

use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Env;

type Handle = ThreadsafeFunction<(), (), (), napi::Status, false>;

#[derive(Default)]
struct State {
    handle: Option<Handle>,
    /// Set once the owner is closed, so that `ref()` cannot revive it.
    closed: bool,
}

/// A handle that keeps the event loop alive while it holds a thread-safe
/// function; cheap to clone, shared between the JS object and its tasks.
#[derive(Clone, Default)]
pub struct KeepAlive {
    state: Arc<Mutex<State>>,
}

impl KeepAlive {
    /// A new, referenced keep-alive.
    pub fn new(env: &Env) -> napi::Result<Self> {
        let keep_alive = KeepAlive::default();
        keep_alive.refer(env)?;
        Ok(keep_alive)
    }

    /// Keeps the event loop alive (again), unless the owner is closed.
    pub fn refer(&self, env: &Env) -> napi::Result<()> {
        let mut state = self.lock();
        if state.closed || state.handle.is_some() {
            return Ok(());
        }
        let noop: Function<(), ()> = env.create_function_from_closure("canhazdbKeepAlive", |_| Ok(()))?;
        state.handle = Some(noop.build_threadsafe_function::<()>().build()?);
        Ok(())
    }

    /// Lets the event loop exit even though the owner is open.
    pub fn unref(&self) {
        // Dropping releases the thread-safe function; libuv closes its handle.
        let handle = self.lock().handle.take();
        drop(handle);
    }

    /// The owner closed: release for good. Callable from any thread.
    pub fn close(&self) {
        let handle = {
            let mut state = self.lock();
            state.closed = true;
            state.handle.take()
        };
        drop(handle);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
