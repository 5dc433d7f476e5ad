//! Ring arithmetic shared by every queue: indices, wrap-around, the phase
//! tag and the full/empty rules (Base spec 3.3.1, "Queue Head and Tail").
//!
//! A submission ring of `n` entries holds at most `n - 1` commands: it is
//! full when `tail + 1 == head (mod n)`. A completion ring is consumed while
//! the entry at `head` carries the expected phase; the expected phase flips
//! each time `head` wraps to 0.

/// Host side of a submission ring.
#[derive(Debug, Clone)]
pub struct SqRing {
    entries: u16,
    tail: u16,
    /// The device's head as last reported in a CQE (`sq_head`).
    head: u16,
}

impl SqRing {
    pub fn new(entries: u16) -> SqRing {
        assert!(entries >= 2, "a queue needs at least two entries");
        SqRing { entries, tail: 0, head: 0 }
    }
    pub fn entries(&self) -> u16 {
        self.entries
    }
    pub fn tail(&self) -> u16 {
        self.tail
    }
    pub fn head(&self) -> u16 {
        self.head
    }
    pub fn is_full(&self) -> bool {
        self.next(self.tail) == self.head
    }
    /// Entries the device has not consumed yet.
    pub fn used(&self) -> u16 {
        (self.tail + self.entries - self.head) % self.entries
    }
    fn next(&self, i: u16) -> u16 {
        if i + 1 == self.entries {
            0
        } else {
            i + 1
        }
    }
    /// Claims the slot at the tail and advances it; `None` when full.
    pub fn push(&mut self) -> Option<u16> {
        if self.is_full() {
            return None;
        }
        let slot = self.tail;
        self.tail = self.next(self.tail);
        Some(slot)
    }
    /// Records the device's head from a completion. Returns false (and keeps
    /// the old head) when the value is impossible: outside the ring or past
    /// the tail.
    pub fn update_head(&mut self, head: u16) -> bool {
        if head >= self.entries {
            return false;
        }
        // The new head must lie between the old head and the tail (inclusive).
        let advanced = (head + self.entries - self.head) % self.entries;
        if advanced > self.used() {
            return false;
        }
        self.head = head;
        true
    }
}

/// Host side of a completion ring.
#[derive(Debug, Clone)]
pub struct CqRing {
    entries: u16,
    head: u16,
    phase: bool,
}

impl CqRing {
    /// A fresh ring: the device writes phase 1 on its first pass.
    pub fn new(entries: u16) -> CqRing {
        assert!(entries >= 2, "a queue needs at least two entries");
        CqRing { entries, head: 0, phase: true }
    }
    pub fn head(&self) -> u16 {
        self.head
    }
    pub fn entries(&self) -> u16 {
        self.entries
    }
    /// The phase an entry at `head` carries when it is new.
    pub fn expected_phase(&self) -> bool {
        self.phase
    }
    /// Consumes the entry at `head`.
    pub fn advance(&mut self) {
        self.head += 1;
        if self.head == self.entries {
            self.head = 0;
            self.phase = !self.phase;
        }
    }
}

/// Device side of a completion ring: where the next entry goes, with which
/// phase, and whether the host has left room.
#[derive(Debug, Clone)]
pub struct CqProducer {
    entries: u16,
    tail: u16,
    phase: bool,
}

impl CqProducer {
    pub fn new(entries: u16) -> CqProducer {
        assert!(entries >= 2);
        CqProducer { entries, tail: 0, phase: true }
    }
    pub fn tail(&self) -> u16 {
        self.tail
    }
    pub fn phase(&self) -> bool {
        self.phase
    }
    /// Full when advancing the tail would meet the host's head doorbell.
    pub fn is_full(&self, host_head: u16) -> bool {
        (self.tail + 1) % self.entries == host_head % self.entries
    }
    pub fn advance(&mut self) {
        self.tail += 1;
        if self.tail == self.entries {
            self.tail = 0;
            self.phase = !self.phase;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sq_holds_entries_minus_one() {
        let mut sq = SqRing::new(4);
        assert_eq!(sq.push(), Some(0));
        assert_eq!(sq.push(), Some(1));
        assert_eq!(sq.push(), Some(2));
        assert!(sq.is_full());
        assert_eq!(sq.push(), None);
        assert_eq!(sq.used(), 3);
    }

    #[test]
    fn sq_wraps_around_after_head_moves() {
        let mut sq = SqRing::new(4);
        for _ in 0..3 {
            sq.push().unwrap();
        }
        assert!(sq.update_head(2));
        assert_eq!(sq.push(), Some(3));
        assert_eq!(sq.push(), Some(0), "tail wraps to slot 0");
        assert!(sq.is_full());
        assert_eq!(sq.tail(), 1);
    }

    #[test]
    fn sq_rejects_impossible_heads() {
        let mut sq = SqRing::new(8);
        sq.push().unwrap();
        sq.push().unwrap();
        assert!(!sq.update_head(8), "outside the ring");
        assert!(!sq.update_head(3), "past the tail");
        assert!(sq.update_head(2));
        assert_eq!(sq.used(), 0);
    }

    #[test]
    fn cq_phase_flips_on_wrap() {
        let mut cq = CqRing::new(3);
        let mut dev = CqProducer::new(3);
        assert!(cq.expected_phase() && dev.phase());
        for _ in 0..3 {
            assert_eq!(cq.head(), dev.tail());
            assert_eq!(cq.expected_phase(), dev.phase());
            cq.advance();
            dev.advance();
        }
        assert_eq!(cq.head(), 0);
        assert!(!cq.expected_phase(), "second pass expects phase 0");
        assert!(!dev.phase());
    }

    #[test]
    fn cq_producer_full_rule() {
        let mut dev = CqProducer::new(4);
        assert!(!dev.is_full(0));
        dev.advance();
        dev.advance();
        dev.advance();
        assert!(dev.is_full(0), "three entries posted, host consumed none");
        assert!(!dev.is_full(1));
    }
}
