//! The VFIO system-call layer behind a trait, so the bring-up sequence in
//! `vfio.rs` runs in tests against a fake (STYLE item 10). `RealVfio` is the
//! only code here that issues ioctls.
//!
//! Numbers and layouts from `<linux/vfio.h>` (stable UAPI): `VFIO_TYPE` is
//! ';' and `VFIO_BASE` 100; every ioctl is `_IO(VFIO_TYPE, VFIO_BASE + n)`.

use super::bar::Bar;
use std::ffi::CString;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};

/// A file descriptor of the VFIO layer (an index for fakes).
pub type Fd = RawFd;

/// `VFIO_API_VERSION`.
pub const API_VERSION: i32 = 0;
/// `VFIO_TYPE1_IOMMU` and `VFIO_TYPE1v2_IOMMU`.
pub const TYPE1_IOMMU: u32 = 1;
pub const TYPE1V2_IOMMU: u32 = 3;
/// `VFIO_GROUP_FLAGS_VIABLE`: every device of the group is bound to vfio
/// (or to no driver).
pub const GROUP_FLAGS_VIABLE: u32 = 1;
/// Region indexes of a PCI device (`VFIO_PCI_BAR0_REGION_INDEX`, `VFIO_PCI_CONFIG_REGION_INDEX`).
pub const BAR0_REGION: u32 = 0;
pub const CONFIG_REGION: u32 = 7;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
pub const REGION_FLAG_MMAP: u32 = 1 << 2;

const fn vfio_io(n: u32) -> libc::c_ulong {
    // _IO(';', 100 + n): no size or direction bits.
    ((b';' as libc::c_ulong) << 8) | (100 + n) as libc::c_ulong
}
const GET_API_VERSION: libc::c_ulong = vfio_io(0);
const CHECK_EXTENSION: libc::c_ulong = vfio_io(1);
const SET_IOMMU: libc::c_ulong = vfio_io(2);
const GROUP_GET_STATUS: libc::c_ulong = vfio_io(3);
const GROUP_SET_CONTAINER: libc::c_ulong = vfio_io(4);
const GROUP_GET_DEVICE_FD: libc::c_ulong = vfio_io(6);
const DEVICE_GET_REGION_INFO: libc::c_ulong = vfio_io(8);
const IOMMU_MAP_DMA: libc::c_ulong = vfio_io(13);

/// `struct vfio_group_status`.
#[repr(C)]
#[derive(Debug, Default)]
struct GroupStatus {
    argsz: u32,
    flags: u32,
}
const _: () = assert!(size_of::<GroupStatus>() == 8);
// The `argsz` fields: these structs are 8 and 32 bytes (asserted), so the casts are exact.
#[allow(clippy::cast_possible_truncation)]
const GROUP_STATUS_SIZE: u32 = size_of::<GroupStatus>() as u32;
#[allow(clippy::cast_possible_truncation)]
const REGION_INFO_SIZE: u32 = size_of::<RegionInfo>() as u32;
#[allow(clippy::cast_possible_truncation)]
const DMA_MAP_SIZE: u32 = size_of::<DmaMap>() as u32;

/// `struct vfio_region_info` (without capabilities).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RegionInfo {
    pub argsz: u32,
    pub flags: u32,
    pub index: u32,
    pub cap_offset: u32,
    pub size: u64,
    pub offset: u64,
}
const _: () = assert!(size_of::<RegionInfo>() == 32);

/// `struct vfio_iommu_type1_dma_map`.
#[repr(C)]
#[derive(Debug, Default)]
struct DmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
}
const _: () = assert!(size_of::<DmaMap>() == 32);
/// `VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE`.
const DMA_MAP_READ_WRITE: u32 = 0b11;

/// What the VFIO bring-up needs from the kernel.
pub trait VfioSys: Send + Sync + std::fmt::Debug {
    /// Opens `/dev/vfio/vfio`.
    fn open_container(&self) -> io::Result<Fd>;
    fn api_version(&self, container: Fd) -> io::Result<i32>;
    fn check_extension(&self, container: Fd, ext: u32) -> io::Result<bool>;
    /// Opens `/dev/vfio/<group>`.
    fn open_group(&self, group: u32) -> io::Result<Fd>;
    fn group_flags(&self, group: Fd) -> io::Result<u32>;
    fn set_container(&self, group: Fd, container: Fd) -> io::Result<()>;
    fn set_iommu(&self, container: Fd, kind: u32) -> io::Result<()>;
    fn device_fd(&self, group: Fd, bdf: &str) -> io::Result<Fd>;
    fn region_info(&self, device: Fd, index: u32) -> io::Result<RegionInfo>;
    fn map_dma(&self, container: Fd, vaddr: u64, iova: u64, size: u64) -> io::Result<()>;
    fn pread(&self, device: Fd, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn pwrite(&self, device: Fd, buf: &[u8], offset: u64) -> io::Result<()>;
    fn mmap_bar(&self, device: Fd, offset: u64, len: usize) -> io::Result<Bar>;
    fn close(&self, fd: Fd);
}

/// The kernel's VFIO.
#[derive(Debug, Default)]
pub struct RealVfio;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn open(path: &str) -> io::Result<Fd> {
    let c = CString::new(path).map_err(|_| io::Error::other("path with NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated string; the result is checked.
    check(unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })
}

impl VfioSys for RealVfio {
    fn open_container(&self) -> io::Result<Fd> {
        open("/dev/vfio/vfio")
    }

    fn api_version(&self, container: Fd) -> io::Result<i32> {
        // SAFETY: VFIO_GET_API_VERSION takes no argument and touches no memory.
        check(unsafe { libc::ioctl(container, GET_API_VERSION) })
    }

    fn check_extension(&self, container: Fd, ext: u32) -> io::Result<bool> {
        // SAFETY: VFIO_CHECK_EXTENSION takes its argument by value.
        check(unsafe { libc::ioctl(container, CHECK_EXTENSION, libc::c_ulong::from(ext)) }).map(|r| r > 0)
    }

    fn open_group(&self, group: u32) -> io::Result<Fd> {
        open(&format!("/dev/vfio/{group}"))
    }

    fn group_flags(&self, group: Fd) -> io::Result<u32> {
        let mut st = GroupStatus { argsz: GROUP_STATUS_SIZE, flags: 0 };
        // SAFETY: the kernel writes at most `argsz` bytes into `st`, which
        // is a live, correctly laid out `struct vfio_group_status`.
        check(unsafe { libc::ioctl(group, GROUP_GET_STATUS, &raw mut st) })?;
        Ok(st.flags)
    }

    fn set_container(&self, group: Fd, container: Fd) -> io::Result<()> {
        let c: libc::c_int = container;
        // SAFETY: the kernel reads one int through the pointer.
        check(unsafe { libc::ioctl(group, GROUP_SET_CONTAINER, &raw const c) }).map(|_| ())
    }

    fn set_iommu(&self, container: Fd, kind: u32) -> io::Result<()> {
        // SAFETY: VFIO_SET_IOMMU takes its argument by value.
        check(unsafe { libc::ioctl(container, SET_IOMMU, libc::c_ulong::from(kind)) }).map(|_| ())
    }

    fn device_fd(&self, group: Fd, bdf: &str) -> io::Result<Fd> {
        let c = CString::new(bdf).map_err(|_| io::Error::other("BDF with NUL"))?;
        // SAFETY: the kernel reads the NUL-terminated device name.
        check(unsafe { libc::ioctl(group, GROUP_GET_DEVICE_FD, c.as_ptr()) })
    }

    fn region_info(&self, device: Fd, index: u32) -> io::Result<RegionInfo> {
        let mut ri = RegionInfo { argsz: REGION_INFO_SIZE, index, ..RegionInfo::default() };
        // SAFETY: the kernel writes at most `argsz` bytes into `ri`, a live
        // `struct vfio_region_info`.
        check(unsafe { libc::ioctl(device, DEVICE_GET_REGION_INFO, &raw mut ri) })?;
        Ok(ri)
    }

    fn map_dma(&self, container: Fd, vaddr: u64, iova: u64, size: u64) -> io::Result<()> {
        let m = DmaMap { argsz: DMA_MAP_SIZE, flags: DMA_MAP_READ_WRITE, vaddr, iova, size };
        // SAFETY: the kernel reads the struct; it pins and maps the user
        // pages at `vaddr`, which the caller (the DMA pool) keeps mapped
        // for as long as the container lives.
        check(unsafe { libc::ioctl(container, IOMMU_MAP_DMA, &raw const m) }).map(|_| ())
    }

    fn pread(&self, device: Fd, buf: &mut [u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        with_file(device, |f| f.read_exact_at(buf, offset))
    }

    fn pwrite(&self, device: Fd, buf: &[u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        with_file(device, |f| f.write_all_at(buf, offset))
    }

    fn mmap_bar(&self, device: Fd, offset: u64, len: usize) -> io::Result<Bar> {
        // SAFETY: `device` is an fd this process opened and keeps open
        // while the VFIO device lives (the borrow ends with this call).
        let fd = unsafe { BorrowedFd::borrow_raw(device) };
        Bar::map(&fd, offset, len)
    }

    fn close(&self, fd: Fd) {
        // SAFETY: `fd` was opened by this layer and is closed exactly once,
        // by the owner's Drop.
        unsafe { libc::close(fd) };
    }
}

/// Runs `f` on `fd` as a `File` without taking ownership of it.
fn with_file<T>(fd: Fd, f: impl FnOnce(&std::fs::File) -> io::Result<T>) -> io::Result<T> {
    use std::os::fd::FromRawFd;
    // SAFETY: the fd is open for the duration of the call; ManuallyDrop
    // keeps the temporary File from closing it.
    let file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    f(&file)
}
