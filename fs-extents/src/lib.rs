//! File offsets to device blocks: extent maps read from FIEMAP or from an ext4
//! image in user space, translation with access checks, versions that tell a
//! chain the file changed under it, and a per-tenant registry of files.
//!
//! Must not know about: NVMe, eBPF. The device offsets it produces are bytes
//! on "the device the driver reads"; turning them into LBAs is the caller's job.

pub mod addr;
pub mod device;
pub mod ext4;
pub mod fiemap;
pub mod map;
pub mod registry;
mod sys;

pub use addr::{DevOffset, FileOffset};
pub use device::{DeviceError, DeviceTarget};
pub use ext4::{Ext4, Ext4Error};
pub use fiemap::{FiemapError, TrackedFile};
pub use map::{
    ChangeStamp, Extent, ExtentKind, ExtentMap, MapError, Segment, Segments, Target, TranslateError,
};
pub use registry::{AccessError, FileHandle, FileId, Registry, Snapshot, TenantId};
