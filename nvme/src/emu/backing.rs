//! Where the emulated namespace keeps its blocks: memory, or a file (with
//! O_DIRECT where the file system allows it).

use crate::dma::mmap::PrivateMemory;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// Alignment O_DIRECT transfers keep to (offset, length and buffer).
const DIRECT_ALIGN: u64 = 4096;

#[repr(C, align(4096))]
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
struct Page([u8; 4096]);

/// A reusable bounce buffer, 4 KiB aligned so O_DIRECT accepts it.
#[derive(Default)]
pub struct Bounce(Vec<Page>);

impl std::fmt::Debug for Bounce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bounce({} pages)", self.0.len())
    }
}

impl Bounce {
    fn get(&mut self, len: usize) -> &mut [u8] {
        let pages = len.div_ceil(4096);
        if self.0.len() < pages {
            self.0.resize(pages, Page::new_zeroed());
        }
        &mut self.0.as_mut_bytes()[..len]
    }
}

/// The bytes of an in-memory namespace: heap memory, or 2 MiB hugepages.
#[derive(Debug)]
pub enum MemStore {
    Heap(Vec<u8>),
    Hugepages(PrivateMemory),
}

impl std::ops::Deref for MemStore {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            MemStore::Heap(v) => v,
            MemStore::Hugepages(m) => m.as_slice(),
        }
    }
}

impl std::ops::DerefMut for MemStore {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            MemStore::Heap(v) => v,
            MemStore::Hugepages(m) => m.as_mut_slice(),
        }
    }
}

/// The namespace's storage.
#[derive(Debug)]
pub enum Backing {
    Memory(RwLock<MemStore>),
    File(FileStore),
}

#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    buffered: File,
    direct: Option<File>,
    len: u64,
    read_only: bool,
}

impl FileStore {
    /// Whether aligned transfers bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Backing {
    /// A zero-filled in-memory namespace of `len` bytes.
    pub fn memory(len: u64) -> io::Result<Backing> {
        let n = usize::try_from(len).map_err(|_| io::Error::other("namespace too large for memory"))?;
        let mut v = Vec::new();
        v.try_reserve_exact(n).map_err(|_| io::Error::other(format!("cannot allocate {len} bytes for the in-memory namespace")))?;
        v.resize(n, 0);
        Ok(Backing::Memory(RwLock::new(MemStore::Heap(v))))
    }

    /// An in-memory namespace holding `bytes`.
    pub fn memory_from(bytes: Vec<u8>) -> Backing {
        Backing::Memory(RwLock::new(MemStore::Heap(bytes)))
    }

    /// An in-memory namespace holding `bytes`, copied into 2 MiB hugepages
    /// (fewer TLB misses over a large namespace); an error when not enough
    /// hugepages are free.
    pub fn hugepages_from(bytes: &[u8]) -> io::Result<Backing> {
        let mut m = PrivateMemory::hugepages(bytes.len())?;
        m.as_mut_slice().copy_from_slice(bytes);
        Ok(Backing::Memory(RwLock::new(MemStore::Hugepages(m))))
    }

    /// Whether the namespace lives in hugepages.
    pub fn is_hugepages(&self) -> bool {
        matches!(self, Backing::Memory(m) if matches!(*m.read().unwrap_or_else(|p| p.into_inner()), MemStore::Hugepages(_)))
    }

    /// A namespace backed by the file at `path` (created, or grown to
    /// `min_len` bytes when given). Tries O_DIRECT; file systems without it
    /// (tmpfs) are used through the page cache.
    pub fn file(path: &Path, min_len: Option<u64>) -> io::Result<Backing> {
        let buffered = OpenOptions::new().read(true).write(true).create(min_len.is_some()).truncate(false).open(path)?;
        let mut len = size_of(&buffered)?;
        if let Some(m) = min_len {
            if len < m {
                buffered.set_len(m)?;
                len = m;
            }
        }
        let direct = OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT).open(path).ok();
        Ok(Backing::File(FileStore { path: path.to_path_buf(), buffered, direct, len, read_only: false }))
    }

    /// A read-only namespace over the file or block device at `path` (a
    /// device that holds a mounted file system, say): Write commands fail.
    pub fn file_read_only(path: &Path) -> io::Result<Backing> {
        let buffered = File::open(path)?;
        let len = size_of(&buffered)?;
        let direct = OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path).ok();
        Ok(Backing::File(FileStore { path: path.to_path_buf(), buffered, direct, len, read_only: true }))
    }

    pub fn len(&self) -> u64 {
        match self {
            Backing::Memory(m) => m.read().map(|v| v.len() as u64).unwrap_or(0),
            Backing::File(f) => f.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads `len` bytes at `off` and hands them to `sink` (no extra copy for
    /// memory; through `bounce` for files).
    pub fn read_with<R>(&self, off: u64, len: usize, bounce: &mut Bounce, sink: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        let end = off.checked_add(len as u64).filter(|&e| e <= self.len()).ok_or_else(|| io::Error::other("read past the end of the backing store"))?;
        match self {
            Backing::Memory(m) => {
                let v = m.read().unwrap_or_else(|p| p.into_inner());
                // `end <= len`, so both bounds fit in usize.
                Ok(sink(&v[usize::try_from(off).map_err(io::Error::other)?..usize::try_from(end).map_err(io::Error::other)?]))
            }
            Backing::File(f) => {
                let buf = bounce.get(len);
                f.read_at(off, buf)?;
                Ok(sink(buf))
            }
        }
    }

    /// Lets `fill` produce `len` bytes, then stores them at `off`.
    pub fn write_with<R>(&self, off: u64, len: usize, bounce: &mut Bounce, fill: impl FnOnce(&mut [u8]) -> R) -> io::Result<R> {
        let end = off.checked_add(len as u64).filter(|&e| e <= self.len()).ok_or_else(|| io::Error::other("write past the end of the backing store"))?;
        match self {
            Backing::Memory(m) => {
                let mut v = m.write().unwrap_or_else(|p| p.into_inner());
                Ok(fill(&mut v[usize::try_from(off).map_err(io::Error::other)?..usize::try_from(end).map_err(io::Error::other)?]))
            }
            Backing::File(f) => {
                let buf = bounce.get(len);
                let r = fill(buf);
                f.write_at(off, buf)?;
                Ok(r)
            }
        }
    }

    pub fn flush(&self) -> io::Result<()> {
        match self {
            Backing::Memory(_) => Ok(()),
            Backing::File(f) => f.buffered.sync_data(),
        }
    }

    /// A copy of bytes `[off, off + len)` (tests and tools).
    pub fn snapshot(&self, off: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut b = Bounce::default();
        self.read_with(off, len, &mut b, |s| s.to_vec())
    }
}

/// Bytes of a file or block device (a block device's metadata says 0).
fn size_of(f: &File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = f;
    f.seek(SeekFrom::End(0))
}

impl FileStore {
    fn pick(&self, off: u64, len: usize) -> &File {
        match &self.direct {
            Some(d) if off % DIRECT_ALIGN == 0 && (len as u64) % DIRECT_ALIGN == 0 => d,
            _ => &self.buffered,
        }
    }

    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        match self.pick(off, buf.len()).read_exact_at(buf, off) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.buffered.read_exact_at(buf, off),
            r => r,
        }
    }

    fn write_at(&self, off: u64, buf: &[u8]) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{} is a read-only namespace", self.path.display())));
        }
        match self.pick(off, buf.len()).write_all_at(buf, off) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.buffered.write_all_at(buf, off),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_round_trip_and_bounds() {
        let b = Backing::memory(8192).unwrap();
        let mut bounce = Bounce::default();
        b.write_with(4096, 4, &mut bounce, |d| d.copy_from_slice(b"abcd")).unwrap();
        assert_eq!(b.snapshot(4096, 4).unwrap(), b"abcd");
        assert!(b.read_with(8190, 4, &mut bounce, |_| ()).is_err());
        assert!(b.read_with(u64::MAX, 4, &mut bounce, |_| ()).is_err());
    }

    #[test]
    fn file_round_trip_aligned_and_not() {
        let dir = std::env::temp_dir().join(format!("nvme-backing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ns.img");
        let b = Backing::file(&path, Some(1 << 20)).unwrap();
        let mut bounce = Bounce::default();
        let data: Vec<u8> = (0..8192u32).map(|i| ((i * 7) & 0xff) as u8).collect();
        b.write_with(4096, 8192, &mut bounce, |d| d.copy_from_slice(&data)).unwrap();
        assert_eq!(b.snapshot(4096, 8192).unwrap(), data);
        b.write_with(512, 512, &mut bounce, |d| d.fill(9)).unwrap();
        assert_eq!(b.snapshot(512, 512).unwrap(), vec![9u8; 512]);
        assert_eq!(b.len(), 1 << 20);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
