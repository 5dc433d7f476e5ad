//! Host set-up, like SPDK's `setup.sh HUGEMEM=...`: reserve 2 MiB hugepages
//! for DMA memory and report what is reserved.

use std::io;
use std::path::Path;

/// Hugepage counters from `/proc/meminfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hugepages {
    pub total: u64,
    pub free: u64,
    pub size_kib: u64,
}

impl Hugepages {
    pub fn free_bytes(&self) -> u64 {
        self.free * self.size_kib * 1024
    }
    pub fn total_bytes(&self) -> u64 {
        self.total * self.size_kib * 1024
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("reading {path}")]
    Read { path: &'static str, source: io::Error },
    #[error("{path} has no {field} line; is this Linux with hugetlb support?")]
    Missing { path: &'static str, field: &'static str },
    #[error("writing {path} needs root: reserving {mb} MiB of hugepages must run as root")]
    NotRoot { path: &'static str, mb: u64 },
    #[error("writing {path}")]
    Write { path: &'static str, source: io::Error },
    #[error("asked for {want} hugepages, the kernel reserved {got} (memory too fragmented or too small); try fewer, or reserve at boot with hugepages=N")]
    Short { want: u64, got: u64 },
}

const MEMINFO: &str = "/proc/meminfo";
const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// Parses the hugepage lines of a `/proc/meminfo` text.
pub fn parse_meminfo(text: &str) -> Result<Hugepages, SetupError> {
    let field = |name: &'static str| -> Result<u64, SetupError> {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|r| r.trim_start_matches(':').split_whitespace().next().and_then(|v| v.parse().ok())))
            .flatten()
            .ok_or(SetupError::Missing { path: MEMINFO, field: name })
    };
    Ok(Hugepages { total: field("HugePages_Total")?, free: field("HugePages_Free")?, size_kib: field("Hugepagesize")? })
}

/// The host's current hugepage counters.
pub fn hugepages() -> Result<Hugepages, SetupError> {
    let text = std::fs::read_to_string(MEMINFO).map_err(|source| SetupError::Read { path: MEMINFO, source })?;
    parse_meminfo(&text)
}

/// Reserves enough 2 MiB hugepages for `mb` MiB in total (never lowers an
/// existing larger reservation). Returns the counters afterwards.
pub fn reserve(mb: u64) -> Result<Hugepages, SetupError> {
    let before = hugepages()?;
    let want = (mb * 1024).div_ceil(before.size_kib.max(1));
    if before.total >= want {
        return Ok(before);
    }
    if !Path::new(NR_HUGEPAGES).exists() {
        return Err(SetupError::Missing { path: NR_HUGEPAGES, field: "nr_hugepages" });
    }
    std::fs::write(NR_HUGEPAGES, format!("{want}\n")).map_err(|source| {
        if source.kind() == io::ErrorKind::PermissionDenied {
            SetupError::NotRoot { path: NR_HUGEPAGES, mb }
        } else {
            SetupError::Write { path: NR_HUGEPAGES, source }
        }
    })?;
    let after = hugepages()?;
    if after.total < want {
        return Err(SetupError::Short { want, got: after.total });
    }
    Ok(after)
}

/// Gives hugepages back down to `total` pages (what a run found before it
/// reserved more). Pages in use stay with their users; the kernel frees them
/// when they are unmapped.
pub fn release_to(total: u64) -> Result<Hugepages, SetupError> {
    let before = hugepages()?;
    if before.total <= total {
        return Ok(before);
    }
    std::fs::write(NR_HUGEPAGES, format!("{total}\n")).map_err(|source| SetupError::Write { path: NR_HUGEPAGES, source })?;
    hugepages()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo() {
        let t = "MemTotal: 100 kB\nHugePages_Total:      16\nHugePages_Free:       12\nHugePages_Rsvd: 0\nHugepagesize:       2048 kB\n";
        let h = parse_meminfo(t).unwrap();
        assert_eq!(h, Hugepages { total: 16, free: 12, size_kib: 2048 });
        assert_eq!(h.free_bytes(), 12 * 2 * 1024 * 1024);
    }

    /// The error and its causes as a CLI prints them (`{:#}` of anyhow).
    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut c = e.source();
        while let Some(x) = c {
            s = format!("{s}: {x}");
            c = x.source();
        }
        s
    }

    #[test]
    fn errors_say_their_cause_once_and_name_no_cli_command() {
        let io = || io::Error::from_raw_os_error(libc::ENOENT);
        let cause = io().to_string();
        let errors: Vec<Box<dyn std::error::Error>> = vec![
            Box::new(SetupError::Read { path: MEMINFO, source: io() }),
            Box::new(SetupError::Write { path: NR_HUGEPAGES, source: io() }),
            Box::new(crate::dma::DmaError::Map(io())),
            Box::new(crate::dma::DmaError::DeviceMap(io())),
            Box::new(crate::error::QueueError::PrpListAlloc(crate::dma::DmaError::Map(io()))),
        ];
        for e in errors {
            let text = chain(e.as_ref());
            assert_eq!(text.matches(&cause).count(), 1, "{text}");
        }
        let not_root = SetupError::NotRoot { path: NR_HUGEPAGES, mb: 512 }.to_string();
        assert!(!not_root.contains("sfbench"), "{not_root}");
        assert!(not_root.contains("root"), "{not_root}");
    }

    #[test]
    fn missing_fields_are_named() {
        let e = parse_meminfo("MemTotal: 1 kB\n").unwrap_err();
        assert!(e.to_string().contains("HugePages_Total"), "{e}");
    }
}
