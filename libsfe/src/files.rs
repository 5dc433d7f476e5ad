//! The files an engine has been asked to read, by device and inode: each
//! mapped through FIEMAP on first use, checked to live on the engine's
//! device, and re-mapped when a cheap `fstat` says it changed (size or
//! change time), which bumps its extent version so chains still running on
//! the old map end `Stale` instead of reading moved blocks.

use crate::engine::TENANT;
use crate::error::Error;
use fs_extents::fiemap::{device_of, map_file};
use fs_extents::{FileId, Registry};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// What identifies a file: its device and inode.
type Key = (u64, u64);

#[derive(Debug)]
struct Entry {
    id: FileId,
    map: Arc<fs_extents::ExtentMap>,
}

#[derive(Debug)]
pub struct Files {
    /// The engine's device, and its identity (device and inode of the path).
    device: PathBuf,
    device_key: Key,
    known: RwLock<HashMap<Key, Entry>>,
}

/// What `fstat` says of an open file: identity and change stamp.
struct Stat {
    key: Key,
    size: u64,
    ctime: (i64, i64),
    regular: bool,
}

fn fstat(fd: RawFd) -> Result<Stat, Error> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a writable stat buffer; fstat validates `fd` itself.
    let rc = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    if rc != 0 {
        return Err(Error::BadFd { fd, source: std::io::Error::last_os_error() });
    }
    // SAFETY: fstat returned 0, so it filled the buffer.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Ok(Stat {
        key: (st.st_dev as u64, st.st_ino as u64),
        size: u64::try_from(st.st_size).unwrap_or(0),
        ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
        regular: (st.st_mode & libc::S_IFMT) == libc::S_IFREG,
    })
}

fn unchanged(map: &fs_extents::ExtentMap, st: &Stat) -> bool {
    let s = map.stamp();
    s.size == st.size && s.ctime_sec == st.ctime.0 && i64::from(s.ctime_nsec) == st.ctime.1
}

impl Files {
    pub fn new(device: &Path) -> Result<Files, Error> {
        let md = std::fs::metadata(device).map_err(|source| Error::Device { path: device.display().to_string(), source })?;
        Ok(Files { device: device.to_path_buf(), device_key: (md.dev(), md.ino()), known: RwLock::default() })
    }

    pub fn device(&self) -> &Path {
        &self.device
    }

    /// The file behind `fd`, registered and granted, its map current.
    pub fn lookup(&self, fd: RawFd, registry: &Registry) -> Result<FileId, Error> {
        let st = fstat(fd)?;
        if !st.regular {
            return Err(Error::NotRegular { fd });
        }
        if let Some(e) = self.known.read().unwrap_or_else(|p| p.into_inner()).get(&st.key) {
            if unchanged(&e.map, &st) {
                return Ok(e.id);
            }
        }
        self.map(fd, st, registry)
    }

    /// Maps (or re-maps) the file behind `fd`.
    fn map(&self, fd: RawFd, st: Stat, registry: &Registry) -> Result<FileId, Error> {
        // SAFETY: fstat just succeeded on `fd`, so it is an open descriptor;
        // it is only borrowed for the clone below, within this call.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let file = File::from(borrowed.try_clone_to_owned().map_err(|source| Error::BadFd { fd, source })?);
        let target = device_of(&file)?;
        let same = std::fs::metadata(&target.path).map(|m| (m.dev(), m.ino()) == self.device_key).unwrap_or(false);
        if !same {
            return Err(Error::NotOnDevice { file_dev: target.path.display().to_string(), engine_dev: self.device.display().to_string() });
        }
        // Written blocks must be on the device before it is read under the
        // page cache (the engine reads with O_DIRECT); fdatasync works on a
        // read-only descriptor and costs nothing on a clean file.
        file.sync_data().map_err(|source| Error::BadFd { fd, source })?;
        let fresh = map_file(&file, &target)?;
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        match known.get_mut(&st.key) {
            Some(e) => {
                if unchanged(&e.map, &st) && unchanged(&fresh, &st) {
                    return Ok(e.id);
                }
                let map = Arc::new(e.map.refreshed(fresh));
                registry.update_file(e.id, map.clone())?;
                e.map = map;
                Ok(e.id)
            }
            None => {
                let map = Arc::new(fresh);
                let id = registry.add_file(map.clone())?;
                registry.grant(TENANT, id)?;
                known.insert(st.key, Entry { id, map });
                Ok(id)
            }
        }
    }
}
