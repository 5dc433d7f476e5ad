//! DMA memory: a pool of 2 MiB chunks (hugepages when reserved, locked
//! ordinary pages otherwise, with a one-line warning), carved into buffers
//! that a device reads and writes by [`Iova`].
//!
//! Host code never holds a Rust reference into this memory (STYLE item 4): it
//! copies in and out through raw pointers, and reads the one field a device
//! writes asynchronously (a CQE's phase tag) with acquire ordering.

pub mod mmap;

use crate::addr::Iova;
use mmap::{Mapping, HUGEPAGE_SIZE};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Smallest buffer granule: one memory page (CC.MPS = 4 KiB).
pub const PAGE_SIZE: usize = 4096;
/// Size classes: 4 KiB << k for k in 0..CLASSES (4 KiB .. 2 MiB).
const CLASSES: usize = 10;

/// Errors of the DMA pool.
#[derive(Debug, thiserror::Error)]
pub enum DmaError {
    #[error("DMA buffer of {len} bytes is larger than the {max} bytes one chunk holds")]
    TooLarge { len: usize, max: usize },
    #[error("DMA buffer of 0 bytes requested")]
    Empty,
    #[error("DMA pool limit of {limit} bytes reached; raise the pool's limit (PoolOptions::limit_bytes) or reserve more hugepages")]
    Exhausted { limit: usize },
    #[error("mapping DMA memory failed; reserve 2 MiB hugepages (/proc/sys/vm/nr_hugepages, as root) or raise RLIMIT_MEMLOCK")]
    Map(#[source] io::Error),
    #[error("no hugepages are reserved and the fallback to ordinary pages is disabled; reserve 2 MiB hugepages (/proc/sys/vm/nr_hugepages, as root)")]
    NoHugepages,
    #[error("making a DMA chunk reachable by the device failed")]
    DeviceMap(#[source] io::Error),
}

/// Gives each new chunk its device address (the IOVA). The default (no
/// mapper) is the host virtual address, which is what the emulated device
/// sees; a VFIO transport maps the chunk into the IOMMU, a uio transport
/// looks up its physical address. Called once per chunk, before any buffer
/// in it is handed out; the chunk stays mapped for the pool's lifetime.
pub trait ChunkMapper: Send + Sync {
    /// `host` is the chunk's first byte, `len` its size (2 MiB),
    /// `hugepages` whether it is one physically contiguous hugepage.
    fn map_chunk(&self, host: *mut u8, len: usize, hugepages: bool) -> io::Result<Iova>;
}

/// How the pool obtains memory.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Upper bound on mapped bytes (a multiple of 2 MiB is used).
    pub limit_bytes: usize,
    /// Use ordinary locked pages when no hugepage is free (warns once).
    pub allow_fallback: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions { limit_bytes: 1 << 30, allow_fallback: true }
    }
}

struct Chunk {
    map: Mapping,
    iova: Iova,
}

struct Carve {
    /// Index of the chunk being carved and the next free byte in it.
    chunk: Option<usize>,
    next: usize,
    free: [Vec<usize>; CLASSES],
    mapped: usize,
}

pub(crate) struct PoolInner {
    chunks: RwLock<Vec<Chunk>>,
    carve: Mutex<Carve>,
    opts: PoolOptions,
    mapper: Option<Arc<dyn ChunkMapper>>,
}

/// A pool of DMA-able memory shared by a controller and its queue pairs.
#[derive(Clone)]
pub struct DmaPool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for DmaPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaPool").field("mapped", &self.mapped_bytes()).field("hugepages", &self.uses_hugepages()).finish()
    }
}

static FALLBACK_WARNED: AtomicBool = AtomicBool::new(false);

impl DmaPool {
    pub fn new(opts: PoolOptions) -> DmaPool {
        Self::build(opts, None)
    }

    /// A pool whose chunks get their device address from `mapper` (PCIe
    /// transports: IOMMU mapping or physical address).
    pub fn with_mapper(opts: PoolOptions, mapper: Arc<dyn ChunkMapper>) -> DmaPool {
        Self::build(opts, Some(mapper))
    }

    fn build(opts: PoolOptions, mapper: Option<Arc<dyn ChunkMapper>>) -> DmaPool {
        DmaPool {
            inner: Arc::new(PoolInner { chunks: RwLock::new(Vec::new()), carve: Mutex::new(Carve { chunk: None, next: 0, free: Default::default(), mapped: 0 }), opts, mapper }),
        }
    }

    /// Bytes mapped so far.
    pub fn mapped_bytes(&self) -> usize {
        self.inner.carve.lock().map(|c| c.mapped).unwrap_or(0)
    }

    /// Whether every chunk mapped so far is backed by hugepages.
    pub fn uses_hugepages(&self) -> bool {
        self.inner.chunks.read().map(|c| c.iter().all(|ch| ch.map.hugepages)).unwrap_or(false)
    }

    /// Allocates a buffer of `len` bytes, 4 KiB aligned, contiguous in IOVA.
    pub fn alloc(&self, len: usize) -> Result<DmaBuf, DmaError> {
        if len == 0 {
            return Err(DmaError::Empty);
        }
        if len > HUGEPAGE_SIZE {
            return Err(DmaError::TooLarge { len, max: HUGEPAGE_SIZE });
        }
        let class = class_of(len);
        let size = PAGE_SIZE << class;
        let mut carve = self.inner.carve.lock().unwrap_or_else(|p| p.into_inner());
        let host =
            if let Some(h) = carve.free[class].pop() {
                h
            } else {
                let need_new = match carve.chunk {
                    None => true,
                    Some(_) => carve.next + size > HUGEPAGE_SIZE,
                };
                if need_new {
                    if carve.mapped + HUGEPAGE_SIZE > self.inner.opts.limit_bytes {
                        return Err(DmaError::Exhausted { limit: self.inner.opts.limit_bytes });
                    }
                    let map = Mapping::new(HUGEPAGE_SIZE, self.inner.opts.allow_fallback).map_err(|e| {
                        if self.inner.opts.allow_fallback {
                            DmaError::Map(e)
                        } else {
                            DmaError::NoHugepages
                        }
                    })?;
                    if !map.hugepages && !FALLBACK_WARNED.swap(true, Ordering::Relaxed) {
                        eprintln!("warning: no 2 MiB hugepages free; DMA memory falls back to ordinary locked pages (reserve 2 MiB hugepages as root to avoid it)");
                    }
                    // The emulated device sees host virtual addresses; PCIe
                    // transports assign the device address through their mapper.
                    let iova = match &self.inner.mapper {
                        Some(m) => m.map_chunk(map.as_ptr(), map.len(), map.hugepages).map_err(DmaError::DeviceMap)?,
                        None => Iova(map.as_ptr() as u64),
                    };
                    let mut chunks = self.inner.chunks.write().unwrap_or_else(|p| p.into_inner());
                    chunks.push(Chunk { map, iova });
                    carve.chunk = Some(chunks.len() - 1);
                    carve.next = 0;
                    carve.mapped += HUGEPAGE_SIZE;
                }
                let chunks = self.inner.chunks.read().unwrap_or_else(|p| p.into_inner());
                // `carve.chunk` is Some here: set above when it was None.
                let idx = carve.chunk.unwrap_or(0);
                let h = chunks[idx].map.as_ptr() as usize + carve.next;
                carve.next += size;
                h
            };
        drop(carve);
        let iova = self.iova_of(host).expect("a carved buffer lies in a chunk");
        Ok(DmaBuf {
            pool: self.inner.clone(),
            // The pointer came from a successful mmap plus an in-bounds offset.
            ptr: NonNull::new(host as *mut u8).expect("mapped memory is never at address 0"),
            len,
            class,
            iova,
        })
    }

    fn iova_of(&self, host: usize) -> Option<Iova> {
        let chunks = self.inner.chunks.read().unwrap_or_else(|p| p.into_inner());
        chunks.iter().find_map(|c| {
            let base = c.map.as_ptr() as usize;
            (host >= base && host < base + c.map.len()).then(|| Iova(c.iova.0 + (host - base) as u64))
        })
    }

    /// The device's view of this pool: translation of device addresses.
    pub fn device_view(&self) -> DeviceMemory {
        DeviceMemory { pool: self.inner.clone() }
    }
}

fn class_of(len: usize) -> usize {
    let pages = len.div_ceil(PAGE_SIZE);
    pages.next_power_of_two().trailing_zeros() as usize
}

/// A buffer in DMA memory, owned by one holder at a time: the caller, or the
/// queue pair while a command that uses it is in flight.
pub struct DmaBuf {
    pool: Arc<PoolInner>,
    ptr: NonNull<u8>,
    len: usize,
    class: usize,
    iova: Iova,
}

// SAFETY: a `DmaBuf` is the unique owner of its byte range; the pool it points
// into is kept alive by the `Arc` and is itself `Send + Sync`.
unsafe impl Send for DmaBuf {}

impl std::fmt::Debug for DmaBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaBuf").field("iova", &self.iova).field("len", &self.len).finish()
    }
}

impl DmaBuf {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn iova(&self) -> Iova {
        self.iova
    }
    /// Device address of byte `off` (`off <= len`).
    pub fn iova_at(&self, off: usize) -> Iova {
        assert!(off <= self.len, "offset {off} past buffer of {} bytes", self.len);
        Iova(self.iova.0 + off as u64)
    }
    /// Host address of the first byte, for code that hands the buffer to a
    /// program without copying (the storage function's `ctx.data`).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Copies `dst.len()` bytes starting at `off` out of the buffer.
    pub fn read(&self, off: usize, dst: &mut [u8]) {
        assert!(off.checked_add(dst.len()).is_some_and(|e| e <= self.len), "read past DMA buffer");
        // SAFETY: the range is inside this buffer (checked above), which lies
        // in a live mapping; `dst` is ordinary memory, so they do not overlap.
        unsafe { mmap::copy(self.ptr.as_ptr().wrapping_add(off), dst.as_mut_ptr(), dst.len()) }
    }

    /// Copies `src` into the buffer at `off`.
    pub fn write(&mut self, off: usize, src: &[u8]) {
        assert!(off.checked_add(src.len()).is_some_and(|e| e <= self.len), "write past DMA buffer");
        // SAFETY: as in `read`, with the roles swapped.
        unsafe { mmap::copy(src.as_ptr(), self.ptr.as_ptr().wrapping_add(off), src.len()) }
    }

    /// The buffer as a byte slice, for code that hands it to a program
    /// without copying (the storage function's `ctx.data`).
    ///
    /// Sound because holding a `DmaBuf` means owning it (STYLE items 4, 5):
    /// - while a command uses the buffer the queue pair holds it, and only
    ///   the command's completion hands it back, after the device finished;
    /// - a command past its deadline comes back *without* its buffer: the
    ///   queue pair keeps it until the device answers (or, when the queue
    ///   cannot be deleted, leaks it), so no `&mut [u8]` ever exists over
    ///   memory a device may still write;
    /// - the only way to point the device at memory without handing over its
    ///   `DmaBuf` is the `unsafe` [`crate::Submitter::submit`] (or
    ///   `Controller::admin_raw`), whose contract forbids doing so for a
    ///   buffer the host keeps using.
    ///
    /// A device that wrote into a buffer after completing its command would
    /// be broken in the same way for every driver.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the range is this buffer's own bytes inside a live mapping,
        // exclusively owned through `&mut self` (see above).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    pub fn fill(&mut self, byte: u8) {
        // SAFETY: the whole buffer lies in a live mapping.
        unsafe { mmap::fill(self.ptr.as_ptr(), byte, self.len) }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len];
        self.read(0, &mut v);
        v
    }

    /// Reads a u16 at `off` (2-aligned) with acquire ordering.
    pub fn load_u16_acquire(&self, off: usize) -> u16 {
        assert!(off % 2 == 0 && off + 2 <= self.len);
        // SAFETY: aligned (buffers are page aligned, off is even) and in bounds.
        unsafe { mmap::load_u16_acquire(self.ptr.as_ptr().wrapping_add(off)) }
    }
}

impl Drop for DmaBuf {
    fn drop(&mut self) {
        let mut carve = self.pool.carve.lock().unwrap_or_else(|p| p.into_inner());
        carve.free[self.class].push(self.ptr.as_ptr() as usize);
    }
}

/// What a device may touch: device addresses translated to host memory,
/// checked to lie inside the pool. A device given a bad address gets `None`
/// and reports a data transfer error instead of touching foreign memory.
#[derive(Clone)]
pub struct DeviceMemory {
    pool: Arc<PoolInner>,
}

impl std::fmt::Debug for DeviceMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceMemory")
    }
}

impl DeviceMemory {
    /// Host address of `[iova, iova + len)` if the whole range is in one chunk.
    pub fn translate(&self, iova: Iova, len: usize) -> Option<*mut u8> {
        let chunks = self.pool.chunks.read().unwrap_or_else(|p| p.into_inner());
        chunks.iter().find_map(|c| {
            let off = usize::try_from(iova.0.checked_sub(c.iova.0)?).ok()?;
            let end = off.checked_add(len)?;
            (end <= c.map.len()).then(|| {
                // SAFETY-free: pointer arithmetic inside the mapping (checked).
                c.map.as_ptr().wrapping_add(off)
            })
        })
    }

    /// Device read of host memory (e.g. an SQE, a PRP list, write data).
    pub fn read(&self, iova: Iova, dst: &mut [u8]) -> Option<()> {
        let p = self.translate(iova, dst.len())?;
        // SAFETY: `translate` proved the range lies inside a live chunk.
        unsafe { mmap::copy(p, dst.as_mut_ptr(), dst.len()) };
        Some(())
    }

    /// Device write into host memory (read data, a CQE's first 14 bytes).
    pub fn write(&self, iova: Iova, src: &[u8]) -> Option<()> {
        let p = self.translate(iova, src.len())?;
        // SAFETY: as in `read`.
        unsafe { mmap::copy(src.as_ptr(), p, src.len()) };
        Some(())
    }

    /// Writes a CQE: the first 14 bytes, then the status word with release
    /// ordering, so a host that sees the new phase sees the whole entry.
    pub fn post_cqe(&self, iova: Iova, cqe: &[u8; 16]) -> Option<()> {
        let p = self.translate(iova, 16)?;
        if p as usize % 2 != 0 {
            return None;
        }
        // SAFETY: inside a live chunk (translated), 2-aligned (checked).
        unsafe {
            mmap::copy(cqe.as_ptr(), p, 14);
        }
        // SAFETY: as above; offset 14 of a 16-byte range.
        unsafe { mmap::store_u16_release(p.wrapping_add(14), u16::from_le_bytes([cqe[14], cqe[15]])) };
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(class_of(1), 0);
        assert_eq!(class_of(4096), 0);
        assert_eq!(class_of(4097), 1);
        assert_eq!(class_of(HUGEPAGE_SIZE), CLASSES - 1);
    }

    #[test]
    fn alloc_write_read_and_reuse() {
        let pool = DmaPool::new(PoolOptions::default());
        let mut b = pool.alloc(8192).unwrap();
        assert_eq!(b.iova().0 % PAGE_SIZE as u64, 0);
        b.write(100, b"hello");
        let mut out = [0u8; 5];
        b.read(100, &mut out);
        assert_eq!(&out, b"hello");
        let addr = b.iova();
        drop(b);
        let c = pool.alloc(5000).unwrap();
        assert_eq!(c.iova(), addr, "freed buffer of the same class is reused");
    }

    #[test]
    fn device_view_rejects_foreign_addresses() {
        let pool = DmaPool::new(PoolOptions::default());
        let b = pool.alloc(4096).unwrap();
        let dev = pool.device_view();
        assert!(dev.translate(b.iova(), 4096).is_some());
        assert!(dev.translate(Iova(8), 16).is_none());
        let mut x = [0u8; 4];
        assert!(dev.read(Iova(u64::MAX - 1), &mut x).is_none());
    }

    #[test]
    fn limits_are_errors() {
        let pool = DmaPool::new(PoolOptions { limit_bytes: HUGEPAGE_SIZE, allow_fallback: true });
        assert!(matches!(pool.alloc(0), Err(DmaError::Empty)));
        assert!(matches!(pool.alloc(HUGEPAGE_SIZE + 1), Err(DmaError::TooLarge { .. })));
        let _a = pool.alloc(HUGEPAGE_SIZE).unwrap();
        assert!(matches!(pool.alloc(4096), Err(DmaError::Exhausted { .. })));
    }
}
