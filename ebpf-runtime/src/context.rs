//! The program context, binary compatible with XRP's `struct bpf_xrp`
//! (OSDI'22), so that programs written for XRP run unchanged.
//!
//! ```c
//! struct bpf_xrp {
//!     char *data;              /* offset 0   the block just read          */
//!     int done;                /* offset 8   set to finish the chain      */
//!     uint64_t next_addr[16];  /* offset 16  file offsets to read next    */
//!     uint64_t size[16];       /* offset 144 their sizes; 0 = no read     */
//!     char *scratch;           /* offset 272 per-request scratch, 4 KiB   */
//! };                           /* 280 bytes */
//! ```

/// Number of next-read slots a program may fill per hop.
pub const FANOUT_MAX: usize = 16;
/// Bytes of per-request scratch (what XRP gives a program).
pub const SCRATCH_SIZE: usize = 4096;

pub const OFF_DATA: usize = 0;
pub const OFF_DONE: usize = 8;
pub const OFF_NEXT_ADDR: usize = 16;
pub const OFF_SIZE: usize = 144;
pub const OFF_SCRATCH: usize = 272;
pub const CTX_SIZE: usize = 280;

/// The context as the program sees it. Host code fills `data` and `scratch`
/// with addresses of buffers that outlive the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct XrpContext {
    pub data: u64,
    pub done: i32,
    pub _pad: u32,
    pub next_addr: [u64; FANOUT_MAX],
    pub size: [u64; FANOUT_MAX],
    pub scratch: u64,
}

const _: () = assert!(core::mem::size_of::<XrpContext>() == CTX_SIZE);
const _: () = assert!(core::mem::offset_of!(XrpContext, data) == OFF_DATA);
const _: () = assert!(core::mem::offset_of!(XrpContext, done) == OFF_DONE);
const _: () = assert!(core::mem::offset_of!(XrpContext, next_addr) == OFF_NEXT_ADDR);
const _: () = assert!(core::mem::offset_of!(XrpContext, size) == OFF_SIZE);
const _: () = assert!(core::mem::offset_of!(XrpContext, scratch) == OFF_SCRATCH);

impl Default for XrpContext {
    fn default() -> Self {
        XrpContext { data: 0, done: 0, _pad: 0, next_addr: [0; FANOUT_MAX], size: [0; FANOUT_MAX], scratch: 0 }
    }
}

impl XrpContext {
    /// The context's bytes as a program sees them (little-endian, XRP layout).
    pub fn to_bytes(&self) -> [u8; CTX_SIZE] {
        let mut b = [0u8; CTX_SIZE];
        b[OFF_DATA..OFF_DATA + 8].copy_from_slice(&self.data.to_le_bytes());
        b[OFF_DONE..OFF_DONE + 4].copy_from_slice(&self.done.to_le_bytes());
        for i in 0..FANOUT_MAX {
            let a = OFF_NEXT_ADDR + 8 * i;
            b[a..a + 8].copy_from_slice(&self.next_addr[i].to_le_bytes());
            let s = OFF_SIZE + 8 * i;
            b[s..s + 8].copy_from_slice(&self.size[i].to_le_bytes());
        }
        b[OFF_SCRATCH..OFF_SCRATCH + 8].copy_from_slice(&self.scratch.to_le_bytes());
        b
    }

    /// Reads a context back from its bytes (padding is ignored).
    pub fn from_bytes(b: &[u8; CTX_SIZE]) -> XrpContext {
        let u64_at = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let mut done = [0u8; 4];
        done.copy_from_slice(&b[OFF_DONE..OFF_DONE + 4]);
        XrpContext {
            data: u64_at(OFF_DATA),
            done: i32::from_le_bytes(done),
            _pad: 0,
            next_addr: std::array::from_fn(|i| u64_at(OFF_NEXT_ADDR + 8 * i)),
            size: std::array::from_fn(|i| u64_at(OFF_SIZE + 8 * i)),
            scratch: u64_at(OFF_SCRATCH),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_at_xrp_offsets() {
        let mut c = XrpContext { data: 0x1122, done: -1, scratch: 0x3344, ..Default::default() };
        c.next_addr[15] = 7;
        c.size[0] = 4096;
        let b = c.to_bytes();
        assert_eq!(&b[OFF_DONE..OFF_DONE + 4], &[0xff; 4]);
        assert_eq!(b[OFF_NEXT_ADDR + 15 * 8], 7);
        assert_eq!(b[OFF_SCRATCH], 0x44);
        let back = XrpContext::from_bytes(&b);
        assert_eq!((back.data, back.done, back.next_addr[15], back.size[0], back.scratch), (0x1122, -1, 7, 4096, 0x3344));
    }
}
