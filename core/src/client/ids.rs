//! Correlation id allocation: 3..=65535, an id reused only after its reply.

use crate::protocol::{FIRST_REQUEST_ID, LAST_REQUEST_ID};

/// Hands out free correlation ids round-robin, so a just-released id is the
/// last to be reused (a late duplicate reply cannot be mistaken for a new one).
#[derive(Debug, Clone)]
pub struct IdAllocator {
    in_use: Vec<u64>,
    next: u16,
    count: usize,
}

const CAPACITY: usize = (LAST_REQUEST_ID - FIRST_REQUEST_ID) as usize + 1;

impl Default for IdAllocator {
    fn default() -> Self {
        IdAllocator {
            in_use: vec![0; 65536 / 64],
            next: FIRST_REQUEST_ID,
            count: 0,
        }
    }
}

impl IdAllocator {
    /// A free id, or `None` when all 65,533 are in flight.
    pub fn allocate(&mut self) -> Option<u16> {
        if self.count == CAPACITY {
            return None;
        }
        loop {
            let id = self.next;
            self.next = if id == LAST_REQUEST_ID {
                FIRST_REQUEST_ID
            } else {
                id + 1
            };
            if !self.is_in_use(id) {
                self.in_use[id as usize / 64] |= 1 << (id % 64);
                self.count += 1;
                return Some(id);
            }
        }
    }

    /// Frees `id`; freeing an id that is not in use does nothing.
    pub fn release(&mut self, id: u16) {
        if self.is_in_use(id) {
            self.in_use[id as usize / 64] &= !(1 << (id % 64));
            self.count -= 1;
        }
    }

    pub fn is_in_use(&self, id: u16) -> bool {
        self.in_use[id as usize / 64] & (1 << (id % 64)) != 0
    }

    /// Ids currently in flight.
    pub fn in_use_count(&self) -> usize {
        self.count
    }
}
