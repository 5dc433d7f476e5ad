//! Files per tenant. A tenant's programs reach only the files it was granted.
//!
//! Reads are cheap for a poller thread: the registry publishes immutable
//! snapshots (`Arc<Snapshot>`); a poller keeps one, looks files up in it with
//! no lock, and takes a new one only when [`Registry::generation`] (one
//! atomic load) says something changed. Writers copy the table, change the
//! copy and publish it; they are rare (grants, refreshed maps).
//!
//! A lookup hands out a [`FileHandle`]: the map plus the file's shared
//! "latest version" cell. A chain keeps the handle for its whole life and
//! calls [`FileHandle::is_current`] after every read: one atomic load, no
//! hashing. Replacing the map ([`Registry::update_file`]) or removing the
//! file makes every outstanding handle stale. Revoking a grant stops new
//! lookups; chains already running finish (or fail) on the handle they hold.

use crate::map::ExtentMap;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

/// Version-cell value of a removed file: no map has it, so every handle is stale.
pub const VERSION_RETIRED: u64 = u64::MAX;
use std::sync::{Arc, RwLock};

/// A tenant (a client whose programs run chains).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub u32);

/// A file known to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// Most files one registry holds.
pub const FILES_MAX: usize = 1 << 16;

/// A lookup or change the registry refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The tenant was never added (or was removed).
    #[error("unknown tenant {0:?}; add it with Registry::add_tenant")]
    UnknownTenant(TenantId),
    /// The file was never added (or was removed).
    #[error("unknown file {0:?}; add it with Registry::add_file")]
    UnknownFile(FileId),
    /// The tenant may not read the file.
    #[error("access error: tenant {tenant:?} has no grant for file {file:?}")]
    NotGranted {
        /// The tenant.
        tenant: TenantId,
        /// The file.
        file: FileId,
    },
    /// A replacement map whose version does not tell chains it changed.
    #[error("new map for file {file:?} has version {new} but the current one has {old} with a different layout; build it with ExtentMap::refreshed")]
    VersionNotNewer {
        /// The file.
        file: FileId,
        /// The current version.
        old: u64,
        /// The offered version.
        new: u64,
    },
    /// [`FILES_MAX`] reached.
    #[error("the registry already holds {FILES_MAX} files; remove some first")]
    Full,
}

/// A granted file as a chain holds it.
#[derive(Debug, Clone)]
pub struct FileHandle {
    /// The map the chain translates with.
    pub map: Arc<ExtentMap>,
    latest: Arc<AtomicU64>,
}

impl FileHandle {
    /// Whether `map` is still the file's current map (not refreshed to a new
    /// version, not removed).
    #[inline]
    pub fn is_current(&self) -> bool {
        // Acquire pairs with the Release store in `Registry::update_file` /
        // `remove_file`; the value alone decides, no other data is read.
        self.latest.load(Ordering::Acquire) == self.map.version()
    }
}

#[derive(Debug, Clone)]
struct FileEntry {
    map: Arc<ExtentMap>,
    latest: Arc<AtomicU64>,
}

/// One immutable state of the registry.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    files: HashMap<FileId, FileEntry>,
    tenants: HashSet<TenantId>,
    grants: HashSet<(TenantId, FileId)>,
    next_file: u32,
}

impl Snapshot {
    /// A handle on `file` if `tenant` was granted it.
    #[inline]
    pub fn lookup(&self, tenant: TenantId, file: FileId) -> Result<FileHandle, AccessError> {
        if !self.grants.contains(&(tenant, file)) {
            if !self.tenants.contains(&tenant) {
                return Err(AccessError::UnknownTenant(tenant));
            }
            if !self.files.contains_key(&file) {
                return Err(AccessError::UnknownFile(file));
            }
            return Err(AccessError::NotGranted { tenant, file });
        }
        let e = self.files.get(&file).ok_or(AccessError::UnknownFile(file))?;
        Ok(FileHandle { map: Arc::clone(&e.map), latest: Arc::clone(&e.latest) })
    }

    /// The current map version of `file` (no access check: for the engine's
    /// "did it change under the chain" test).
    pub fn version(&self, file: FileId) -> Result<u64, AccessError> {
        self.files.get(&file).map(|e| e.map.version()).ok_or(AccessError::UnknownFile(file))
    }
}

/// The registry: tenants, files and grants, shared between threads.
#[derive(Debug, Default)]
pub struct Registry {
    current: RwLock<Arc<Snapshot>>,
    generation: AtomicU64,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot (takes a read lock briefly).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock still holds a whole Arc (writers only swap it), so the data is usable.
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Bumped by every change; compare with a remembered value to know when
    /// a held snapshot is stale.
    pub fn generation(&self) -> u64 {
        // Acquire pairs with the Release in `update`: a reader that sees the
        // new generation and then takes a snapshot gets the new table.
        self.generation.load(Ordering::Acquire)
    }

    /// `snapshot().lookup(..)`.
    pub fn lookup(&self, tenant: TenantId, file: FileId) -> Result<FileHandle, AccessError> {
        self.snapshot().lookup(tenant, file)
    }

    fn update<T>(&self, f: impl FnOnce(&mut Snapshot) -> Result<T, AccessError>) -> Result<T, AccessError> {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut next = Snapshot::clone(&guard);
        let out = f(&mut next)?;
        *guard = Arc::new(next);
        // Release: published after the new table is in place (see `generation`).
        self.generation.fetch_add(1, Ordering::Release);
        Ok(out)
    }

    /// Adds a tenant (adding one twice is harmless).
    pub fn add_tenant(&self, tenant: TenantId) {
        // Cannot fail: the closure returns Ok.
        let _ = self.update(|s| {
            s.tenants.insert(tenant);
            Ok(())
        });
    }

    /// Removes a tenant and its grants.
    pub fn remove_tenant(&self, tenant: TenantId) -> Result<(), AccessError> {
        self.update(|s| {
            if !s.tenants.remove(&tenant) {
                return Err(AccessError::UnknownTenant(tenant));
            }
            s.grants.retain(|(t, _)| *t != tenant);
            Ok(())
        })
    }

    /// Adds a file with its map; nobody is granted it yet.
    pub fn add_file(&self, map: Arc<ExtentMap>) -> Result<FileId, AccessError> {
        self.update(|s| {
            if s.files.len() >= FILES_MAX {
                return Err(AccessError::Full);
            }
            while s.files.contains_key(&FileId(s.next_file)) {
                s.next_file = s.next_file.wrapping_add(1);
            }
            let id = FileId(s.next_file);
            s.next_file = s.next_file.wrapping_add(1);
            let latest = Arc::new(AtomicU64::new(map.version()));
            s.files.insert(id, FileEntry { map, latest });
            Ok(id)
        })
    }

    /// Replaces a file's map (after a refresh). Chains holding the old map
    /// see the version change through [`Snapshot::version`].
    pub fn update_file(&self, file: FileId, map: Arc<ExtentMap>) -> Result<(), AccessError> {
        self.update(|s| match s.files.get_mut(&file) {
            Some(entry) => {
                let (old, new) = (entry.map.version(), map.version());
                if !(new > old || (new == old && map.same_layout(&entry.map))) {
                    return Err(AccessError::VersionNotNewer { file, old, new });
                }
                // Release: see `FileHandle::is_current`.
                entry.latest.store(map.version(), Ordering::Release);
                entry.map = map;
                Ok(())
            }
            None => Err(AccessError::UnknownFile(file)),
        })
    }

    /// Removes a file and every grant of it.
    pub fn remove_file(&self, file: FileId) -> Result<(), AccessError> {
        self.update(|s| {
            let entry = s.files.remove(&file).ok_or(AccessError::UnknownFile(file))?;
            // Release: see `FileHandle::is_current`.
            entry.latest.store(VERSION_RETIRED, Ordering::Release);
            s.grants.retain(|(_, f)| *f != file);
            Ok(())
        })
    }

    /// Lets `tenant` read `file`.
    pub fn grant(&self, tenant: TenantId, file: FileId) -> Result<(), AccessError> {
        self.update(|s| {
            if !s.tenants.contains(&tenant) {
                return Err(AccessError::UnknownTenant(tenant));
            }
            if !s.files.contains_key(&file) {
                return Err(AccessError::UnknownFile(file));
            }
            s.grants.insert((tenant, file));
            Ok(())
        })
    }

    /// Takes the grant back.
    pub fn revoke(&self, tenant: TenantId, file: FileId) -> Result<(), AccessError> {
        self.update(|s| if s.grants.remove(&(tenant, file)) { Ok(()) } else { Err(AccessError::NotGranted { tenant, file }) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{ChangeStamp, ExtentMap};

    fn map(size: u64) -> Arc<ExtentMap> {
        Arc::new(ExtentMap::new(vec![], size, 4096, ChangeStamp::default()).expect("empty map"))
    }

    #[test]
    fn only_granted_files_are_reachable() {
        let r = Registry::new();
        let (a, b) = (TenantId(1), TenantId(2));
        r.add_tenant(a);
        r.add_tenant(b);
        let f = r.add_file(map(10)).expect("room");
        let g = r.add_file(map(20)).expect("room");
        r.grant(a, f).expect("known");
        assert_eq!(r.lookup(a, f).expect("granted").map.size(), 10);
        assert_eq!(r.lookup(a, g).unwrap_err(), AccessError::NotGranted { tenant: a, file: g });
        assert_eq!(r.lookup(b, f).unwrap_err(), AccessError::NotGranted { tenant: b, file: f });
        assert_eq!(r.lookup(TenantId(9), f).unwrap_err(), AccessError::UnknownTenant(TenantId(9)));
        assert_eq!(r.lookup(a, FileId(99)).unwrap_err(), AccessError::UnknownFile(FileId(99)));
        r.revoke(a, f).expect("was granted");
        assert!(matches!(r.lookup(a, f), Err(AccessError::NotGranted { .. })));
        assert!(matches!(r.grant(TenantId(9), f), Err(AccessError::UnknownTenant(_))));
    }

    #[test]
    fn removals_drop_grants_and_snapshots_stay_valid() {
        let r = Registry::new();
        let t = TenantId(1);
        r.add_tenant(t);
        let f = r.add_file(map(10)).expect("room");
        r.grant(t, f).expect("known");
        let old = r.snapshot();
        let gen = r.generation();
        r.remove_file(f).expect("present");
        assert!(r.generation() > gen);
        let held = old.lookup(t, f).expect("a held snapshot is immutable");
        assert!(!held.is_current(), "but handles on a removed file are stale");
        assert_eq!(r.lookup(t, f).unwrap_err(), AccessError::UnknownFile(f));
        r.remove_tenant(t).expect("present");
        assert_eq!(r.remove_tenant(t).unwrap_err(), AccessError::UnknownTenant(t));
    }

    #[test]
    fn update_file_changes_the_visible_version() {
        let r = Registry::new();
        let f = r.add_file(map(10)).expect("room");
        r.add_tenant(TenantId(1));
        r.grant(TenantId(1), f).expect("known");
        let handle = r.lookup(TenantId(1), f).expect("granted");
        assert!(handle.is_current());
        r.update_file(f, map(10)).expect("same version");
        assert!(handle.is_current(), "a map with the same version keeps handles current");
        let old = r.snapshot().version(f).expect("present");
        let bumped = map(10).refreshed(ExtentMap::new(vec![], 11, 4096, ChangeStamp::default()).expect("empty"));
        r.update_file(f, Arc::new(bumped)).expect("present");
        assert_eq!(r.snapshot().version(f).expect("present"), old + 1);
        assert!(!handle.is_current(), "a refreshed map makes old handles stale");
        assert!(r.lookup(TenantId(1), f).expect("granted").is_current());
        let unversioned = ExtentMap::new(vec![], 12, 4096, ChangeStamp::default()).expect("empty");
        assert!(matches!(r.update_file(f, Arc::new(unversioned)), Err(AccessError::VersionNotNewer { old: 2, new: 1, .. })));
        assert!(matches!(r.update_file(FileId(7), map(1)), Err(AccessError::UnknownFile(_))));
    }

    #[test]
    fn concurrent_readers_see_grants() {
        let r = Arc::new(Registry::new());
        let t = TenantId(3);
        r.add_tenant(t);
        let f = r.add_file(map(10)).expect("room");
        r.grant(t, f).expect("known");
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let r = Arc::clone(&r);
                std::thread::spawn(move || (0..1000).all(|_| r.lookup(t, f).is_ok()))
            })
            .collect();
        for _ in 0..100 {
            r.add_file(map(1)).expect("room");
        }
        for h in readers {
            assert!(h.join().expect("reader thread"));
        }
    }
}
