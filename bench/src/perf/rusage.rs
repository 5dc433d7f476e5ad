//! The one system call of `perf` that needs `unsafe`: the process's CPU
//! time from `getrusage` (user + system, every thread of the process,
//! io_uring's kernel workers included).

use anyhow::{Context, Result};
use std::time::Duration;

/// User + system CPU time of the whole process so far.
pub fn process_cpu() -> Result<Duration> {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_SELF has no other requirement.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("getrusage");
    }
    let tv = |t: libc::timeval| Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_usec).unwrap_or(0) * 1000);
    Ok(tv(ru.ru_utime) + tv(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_grows_with_work() {
        let t0 = super::process_cpu().unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let t1 = super::process_cpu().unwrap();
        assert!(t1 > t0, "{t0:?} -> {t1:?}");
    }
}
