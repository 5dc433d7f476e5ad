//! The DMA pool's chunk-mapper hook, as the PCIe transports use it: every
//! new 2 MiB chunk gets its device address from the transport, buffers carry
//! addresses inside their chunk, and a mapping failure is an error, not a
//! buffer with a wrong address.

use nvme::dma::{ChunkMapper, DmaError};
use nvme::{DmaPool, Iova, PoolOptions};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const CHUNK: u64 = 2 << 20;

#[derive(Default)]
struct Counting {
    chunks: AtomicU64,
    fail: bool,
}

impl ChunkMapper for Counting {
    fn map_chunk(&self, _host: *mut u8, len: usize, _hugepages: bool) -> io::Result<Iova> {
        assert_eq!(len as u64, CHUNK);
        if self.fail {
            return Err(io::Error::other("IOMMU says no"));
        }
        let n = self.chunks.fetch_add(1, Ordering::Relaxed);
        Ok(Iova((1 << 32) + n * CHUNK))
    }
}

#[test]
fn buffers_get_addresses_from_the_mapper() {
    let m = Arc::new(Counting::default());
    let pool = DmaPool::with_mapper(PoolOptions { limit_bytes: 8 << 20, allow_fallback: true }, m.clone());
    let a = pool.alloc(4096).unwrap();
    let b = pool.alloc(8192).unwrap();
    assert_eq!(a.iova(), Iova(1 << 32));
    assert_eq!(b.iova(), Iova((1 << 32) + 4096), "the next buffer is carved right after the first, in the same chunk");
    let big = pool.alloc(2 << 20).unwrap();
    assert_eq!(big.iova(), Iova((1 << 32) + CHUNK), "a full chunk is a new mapping");
    assert_eq!(m.chunks.load(Ordering::Relaxed), 2);
    assert_eq!(pool.device_view().translate(Iova((1 << 32) + 4096), 16).map(|p| p as usize), Some(b.as_ptr() as usize));
}

#[test]
fn a_failed_mapping_is_an_error() {
    let pool = DmaPool::with_mapper(PoolOptions::default(), Arc::new(Counting { fail: true, ..Default::default() }));
    let e = pool.alloc(4096).unwrap_err();
    assert!(matches!(e, DmaError::DeviceMap(_)), "{e}");
    assert!(e.to_string().contains("device"), "{e}");
}
