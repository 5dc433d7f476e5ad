//! Files per tenant. A tenant's programs reach only the files it was granted.
//!
//! Reads are cheap for a poller thread: the registry publishes immutable
//! snapshots (`Arc<Snapshot>`); a poller keeps one, looks files up in it with
//! no lock, and takes a new one only when [`Registry::generation`] (one
//! atomic load) says something changed. Writers copy the table, change the
//! copy and publish it; they are rare (grants, refreshed maps).

use crate::map::ExtentMap;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// [`FILES_MAX`] reached.
    #[error("the registry already holds {FILES_MAX} files; remove some first")]
    Full,
}

/// One immutable state of the registry.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    files: HashMap<FileId, Arc<ExtentMap>>,
    tenants: HashSet<TenantId>,
    grants: HashSet<(TenantId, FileId)>,
    next_file: u32,
}

impl Snapshot {
    /// The map of `file` if `tenant` was granted it.
    #[inline]
    pub fn lookup(&self, tenant: TenantId, file: FileId) -> Result<&Arc<ExtentMap>, AccessError> {
        if !self.grants.contains(&(tenant, file)) {
            if !self.tenants.contains(&tenant) {
                return Err(AccessError::UnknownTenant(tenant));
            }
            if !self.files.contains_key(&file) {
                return Err(AccessError::UnknownFile(file));
            }
            return Err(AccessError::NotGranted { tenant, file });
        }
        self.files.get(&file).ok_or(AccessError::UnknownFile(file))
    }

    /// The current map version of `file` (no access check: for the engine's
    /// "did it change under the chain" test).
    pub fn version(&self, file: FileId) -> Result<u64, AccessError> {
        self.files
            .get(&file)
            .map(|m| m.version())
            .ok_or(AccessError::UnknownFile(file))
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

    /// `snapshot().lookup(..)`, cloning the map's Arc.
    pub fn lookup(&self, tenant: TenantId, file: FileId) -> Result<Arc<ExtentMap>, AccessError> {
        self.snapshot().lookup(tenant, file).cloned()
    }

    fn update<T>(
        &self,
        f: impl FnOnce(&mut Snapshot) -> Result<T, AccessError>,
    ) -> Result<T, AccessError> {
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
            s.files.insert(id, map);
            Ok(id)
        })
    }

    /// Replaces a file's map (after a refresh). Chains holding the old map
    /// see the version change through [`Snapshot::version`].
    pub fn update_file(&self, file: FileId, map: Arc<ExtentMap>) -> Result<(), AccessError> {
        self.update(|s| match s.files.get_mut(&file) {
            Some(slot) => {
                *slot = map;
                Ok(())
            }
            None => Err(AccessError::UnknownFile(file)),
        })
    }

    /// Removes a file and every grant of it.
    pub fn remove_file(&self, file: FileId) -> Result<(), AccessError> {
        self.update(|s| {
            s.files
                .remove(&file)
                .ok_or(AccessError::UnknownFile(file))?;
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
        self.update(|s| {
            if s.grants.remove(&(tenant, file)) {
                Ok(())
            } else {
                Err(AccessError::NotGranted { tenant, file })
            }
        })
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
        assert_eq!(r.lookup(a, f).expect("granted").size(), 10);
        assert_eq!(
            r.lookup(a, g).unwrap_err(),
            AccessError::NotGranted { tenant: a, file: g }
        );
        assert_eq!(
            r.lookup(b, f).unwrap_err(),
            AccessError::NotGranted { tenant: b, file: f }
        );
        assert_eq!(
            r.lookup(TenantId(9), f).unwrap_err(),
            AccessError::UnknownTenant(TenantId(9))
        );
        assert_eq!(
            r.lookup(a, FileId(99)).unwrap_err(),
            AccessError::UnknownFile(FileId(99))
        );
        r.revoke(a, f).expect("was granted");
        assert!(matches!(
            r.lookup(a, f),
            Err(AccessError::NotGranted { .. })
        ));
        assert!(matches!(
            r.grant(TenantId(9), f),
            Err(AccessError::UnknownTenant(_))
        ));
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
        assert!(old.lookup(t, f).is_ok(), "a held snapshot is immutable");
        assert_eq!(r.lookup(t, f).unwrap_err(), AccessError::UnknownFile(f));
        r.remove_tenant(t).expect("present");
        assert_eq!(
            r.remove_tenant(t).unwrap_err(),
            AccessError::UnknownTenant(t)
        );
    }

    #[test]
    fn update_file_changes_the_visible_version() {
        let r = Registry::new();
        let f = r.add_file(map(10)).expect("room");
        let old = r.snapshot().version(f).expect("present");
        let bumped = map(10)
            .refreshed(ExtentMap::new(vec![], 11, 4096, ChangeStamp::default()).expect("empty"));
        r.update_file(f, Arc::new(bumped)).expect("present");
        assert_eq!(r.snapshot().version(f).expect("present"), old + 1);
        assert!(matches!(
            r.update_file(FileId(7), map(1)),
            Err(AccessError::UnknownFile(_))
        ));
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
