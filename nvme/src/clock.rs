//! The clock of command deadlines: `CLOCK_MONOTONIC_COARSE`, the kernel's
//! tick read from the vDSO (a few nanoseconds), instead of the fine clock
//! (about 25 ns a read here) on every submission and every poll. A deadline
//! needs milliseconds: one computed here is never early (the tick's
//! resolution is added) and is noticed at most two ticks late.

use std::sync::OnceLock;
use std::time::Duration;

/// A point in time, in nanoseconds of the coarse monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Tick(u64);

fn read(clock: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(Duration::new(u64::try_from(ts.tv_sec).ok()?, u32::try_from(ts.tv_nsec).ok()?))
}

/// The coarse clock, or the fine one where the kernel has no coarse clock.
fn clock() -> libc::clockid_t {
    static CLOCK: OnceLock<libc::clockid_t> = OnceLock::new();
    *CLOCK.get_or_init(|| if read(libc::CLOCK_MONOTONIC_COARSE).is_some() { libc::CLOCK_MONOTONIC_COARSE } else { libc::CLOCK_MONOTONIC })
}

/// How far the clock may lag real time: one tick.
fn resolution() -> Duration {
    static RES: OnceLock<Duration> = OnceLock::new();
    *RES.get_or_init(|| {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec.
        let ok = unsafe { libc::clock_getres(clock(), &mut ts) } == 0;
        let res = ok.then(|| Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0)));
        // Linux ticks at 100 Hz at the slowest.
        res.filter(|r| !r.is_zero()).unwrap_or(Duration::from_millis(10))
    })
}

impl Tick {
    pub(crate) fn now() -> Tick {
        // CLOCK_MONOTONIC cannot fail on Linux; a zero would only make
        // deadlines late, never early.
        Tick(read(clock()).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }

    /// `self + d`, saturating.
    pub(crate) fn after(self, d: Duration) -> Tick {
        Tick(self.0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }

    /// A deadline `timeout` from now that never comes early: the clock may
    /// lag real time by a tick, so a tick is added.
    pub(crate) fn deadline(timeout: Duration) -> Tick {
        Tick::now().after(timeout).after(resolution())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_never_early() {
        let t0 = std::time::Instant::now();
        let d = Tick::deadline(Duration::from_millis(1));
        while Tick::now() < d {
            std::hint::spin_loop();
        }
        assert!(t0.elapsed() >= Duration::from_millis(1));
        assert!(resolution() <= Duration::from_millis(10));
    }
}
