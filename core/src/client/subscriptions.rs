//! Client-side notify dispatch, as the v8 client did it: handlers are
//! registered per pattern; the first handler of a pattern needs a NOTIFY_ON,
//! removing the last one needs a NOTIFY_OFF; a pushed path goes to every
//! handler whose pattern matches it (unanchored search, like the server).

use regex::Regex;

/// Handlers (`H`, e.g. a JS function or a channel) by pattern.
#[derive(Debug)]
pub struct Subscriptions<H> {
    patterns: Vec<(String, Regex, Vec<H>)>,
}

impl<H> Default for Subscriptions<H> {
    fn default() -> Self {
        Subscriptions { patterns: Vec::new() }
    }
}

impl<H: PartialEq + Clone> Subscriptions<H> {
    /// Adds `handler` for `pattern`. Returns `Ok(true)` when this is the
    /// pattern's first handler, so the caller must send NOTIFY_ON.
    pub fn add(&mut self, pattern: &str, handler: H) -> Result<bool, regex::Error> {
        if let Some((_, _, handlers)) = self.patterns.iter_mut().find(|(p, _, _)| p == pattern) {
            handlers.push(handler);
            return Ok(false);
        }
        let regex = Regex::new(pattern)?;
        self.patterns.push((pattern.to_owned(), regex, vec![handler]));
        Ok(true)
    }

    /// Removes `handler` from `pattern` (every handler of it when `None`).
    /// Returns `true` when the pattern has no handler left, so the caller must
    /// send NOTIFY_OFF.
    pub fn remove(&mut self, pattern: &str, handler: Option<&H>) -> bool {
        let Some(index) = self.patterns.iter().position(|(p, _, _)| p == pattern) else {
            return false;
        };
        let handlers = &mut self.patterns[index].2;
        match handler {
            Some(handler) => handlers.retain(|h| h != handler),
            None => handlers.clear(),
        }
        if handlers.is_empty() {
            self.patterns.remove(index);
            return true;
        }
        false
    }

    /// Every (pattern, handler) whose pattern matches `path`, in registration order.
    pub fn dispatch(&self, path: &str) -> Vec<(&str, H)> {
        self.patterns
            .iter()
            .filter(|(_, regex, _)| regex.is_match(path))
            .flat_map(|(pattern, _, handlers)| handlers.iter().map(move |h| (pattern.as_str(), h.clone())))
            .collect()
    }

    /// The registered patterns (to re-register after a reconnect).
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|(pattern, _, _)| pattern.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}
