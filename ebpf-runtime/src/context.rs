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
