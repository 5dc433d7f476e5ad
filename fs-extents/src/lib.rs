//! File offsets to device blocks: extent maps read from FIEMAP or from an ext4
//! image in user space, translation with access checks, versions that tell a
//! chain the file changed under it, and a per-tenant registry of files.
//!
//! Must not know about: NVMe, eBPF. The device offsets it produces are bytes
//! on "the device the driver reads"; turning them into LBAs is the caller's job.
//!
//! ```no_run
//! use fs_extents::{DevOffset, Ext4, FileOffset, Registry, Target, TenantId, TrackedFile};
//! use std::{fs::File, path::Path, sync::Arc};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // From a mounted file system (FIEMAP) ...
//! let mut tracked = TrackedFile::open(Path::new("/mnt/db/index"))?;
//! // ... or from a device the kernel no longer owns (ext4 read in user space).
//! let fs = Ext4::open_at(File::open("/dev/nvme0n1")?, DevOffset(1 << 20))?;
//! let map = fs.file_map("/db/index")?;
//!
//! let seg = map.translate(FileOffset(8192), 4096)?;
//! if let Target::Device(at) = seg.target { /* read `seg.len` bytes at `at` */ let _ = at; }
//!
//! if tracked.may_have_changed()? {
//!     tracked.refresh()?; // bumps the version if the extents or size differ
//! }
//! let registry = Registry::new();
//! registry.add_tenant(TenantId(1));
//! let file = registry.add_file(Arc::clone(tracked.map()))?;
//! registry.grant(TenantId(1), file)?;
//! let handle = registry.snapshot().lookup(TenantId(1), file)?;
//! assert!(handle.is_current()); // after every read of a chain
//! # Ok(())
//! # }
//! ```

pub mod addr;
pub mod device;
pub mod ext4;
pub mod fiemap;
pub mod map;
pub mod registry;
pub mod scratch;
mod sys;

pub use addr::{DevOffset, FileOffset};
pub use device::{DeviceError, DeviceTarget};
pub use ext4::{Ext4, Ext4Error};
pub use fiemap::{FiemapError, TrackedFile};
pub use map::{ChangeStamp, Extent, ExtentKind, ExtentMap, MapError, Segment, Segments, Target, TranslateError};
pub use registry::{AccessError, FileHandle, FileId, Registry, Snapshot, TenantId};
