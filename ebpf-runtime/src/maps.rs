//! Array and hash maps: storage a program reaches through helpers (and, for
//! values, through the addresses the lookup helper returns), and a safe
//! byte-level API for the host (`get`, `update`, `delete`, `entries`).
//!
//! Values live in one [`Region`] allocated at creation (`max_entries` slots of
//! `value_size` rounded up to 8 bytes), so a value's address never changes
//! while the map lives, as a program holding a looked-up pointer expects.
//! A hash map adds an index from key bytes to slot, behind a mutex: programs
//! on every thread and the host update and delete concurrently. As in Linux,
//! a pointer a program got before a delete still points at valid map memory
//! (the slot may be reused), never at freed memory; values are read and
//! written in place with atomic accesses (`progmem`), so an array value
//! updated by `__sync_fetch_and_add` on two threads counts every increment.
//! A `Map` is `Send + Sync`: one map is shared by every thread running its
//! program and by the host.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::map_spec::{MapKind, MapSpec};
use crate::region::Region;

/// Largest value storage of one map, in bytes.
pub const MAP_BYTES_MAX: usize = 64 << 20;
/// Largest key or value, in bytes (Linux's limit for values is larger; ours is
/// what a storage function reasonably needs).
pub const MAP_ELEM_BYTES_MAX: u32 = 1 << 16;

/// How `update` treats an existing key (`BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateFlag {
    Any,
    NoExist,
    Exist,
}

impl UpdateFlag {
    /// From the helper's flags argument.
    pub fn from_raw(flags: u64) -> Option<UpdateFlag> {
        match flags {
            0 => Some(UpdateFlag::Any),
            1 => Some(UpdateFlag::NoExist),
            2 => Some(UpdateFlag::Exist),
            _ => None,
        }
    }
}

/// Errors of map creation and access.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("map `{map}`: {what}")]
    BadSpec { map: String, what: String },
    #[error("map `{map}`: key of {got} bytes, the map's keys are {expected} bytes")]
    KeySize { map: String, expected: u32, got: usize },
    #[error("map `{map}`: value of {got} bytes, the map's values are {expected} bytes")]
    ValueSize { map: String, expected: u32, got: usize },
    #[error("map `{map}`: index {index} is not below max_entries {max_entries}")]
    IndexOutOfRange { map: String, index: u32, max_entries: u32 },
    #[error("map `{map}` is full ({max_entries} entries); delete entries or raise max_entries")]
    Full { map: String, max_entries: u32 },
    #[error("map `{map}`: key not found")]
    NotFound { map: String },
    #[error("map `{map}`: key exists and BPF_NOEXIST was given")]
    Exists { map: String },
    #[error("map `{map}`: entries of an array map cannot be deleted")]
    ArrayDelete { map: String },
}

impl MapError {
    /// The negative errno a helper returns for this error (Linux's choice).
    pub fn errno(&self) -> i64 {
        match self {
            MapError::NotFound { .. } => -2, // ENOENT
            MapError::Full { .. } => -7,     // E2BIG
            MapError::Exists { .. } => -17,  // EEXIST
            _ => -22,                        // EINVAL
        }
    }
}

#[derive(Debug, Default)]
struct HashIndex {
    slot_of: HashMap<Vec<u8>, u32>,
    key_of: Vec<Option<Vec<u8>>>,
    free: Vec<u32>,
}

/// One map: its spec and its storage.
#[derive(Debug)]
pub struct Map {
    spec: MapSpec,
    values: Region,
    stride: usize,
    hash: Option<Mutex<HashIndex>>,
}

impl Map {
    /// Allocates a zeroed map; array entries all exist, a hash map is empty.
    pub fn new(spec: MapSpec) -> Result<Map, MapError> {
        let bad = |what: String| MapError::BadSpec { map: spec.name.clone(), what };
        if spec.value_size == 0 || spec.value_size > MAP_ELEM_BYTES_MAX {
            return Err(bad(format!("value_size {} must be in 1..={MAP_ELEM_BYTES_MAX}", spec.value_size)));
        }
        if spec.max_entries == 0 {
            return Err(bad("max_entries must not be 0".into()));
        }
        match spec.kind {
            MapKind::Array if spec.key_size != 4 => {
                return Err(bad(format!("array maps have 4-byte keys, not {}", spec.key_size)));
            }
            MapKind::Hash if spec.key_size == 0 || spec.key_size > MAP_ELEM_BYTES_MAX => {
                return Err(bad(format!("key_size {} must be in 1..={MAP_ELEM_BYTES_MAX}", spec.key_size)));
            }
            _ => {}
        }
        let stride = (spec.value_size as usize).next_multiple_of(8);
        let bytes = stride
            .checked_mul(spec.max_entries as usize)
            .filter(|b| *b <= MAP_BYTES_MAX)
            .ok_or_else(|| bad(format!("{} entries of {stride} bytes exceed {MAP_BYTES_MAX} bytes", spec.max_entries)))?;
        let hash = (spec.kind == MapKind::Hash)
            .then(|| Mutex::new(HashIndex { slot_of: HashMap::new(), key_of: vec![None; spec.max_entries as usize], free: (0..spec.max_entries).rev().collect() }));
        Ok(Map { values: Region::zeroed(bytes), stride, hash, spec })
    }

    /// What the object declared.
    pub fn spec(&self) -> &MapSpec {
        &self.spec
    }

    /// The value storage, as a program's addresses see it.
    pub(crate) fn values(&self) -> &Region {
        &self.values
    }

    /// The hash index, locked. A panic while it was held cannot leave the
    /// index inconsistent in a way that matters for memory safety (slots are
    /// always inside the region), so a poisoned lock is taken over.
    fn index(h: &Mutex<HashIndex>) -> MutexGuard<'_, HashIndex> {
        h.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_key(&self, key: &[u8]) -> Result<(), MapError> {
        if key.len() != self.spec.key_size as usize {
            return Err(MapError::KeySize { map: self.spec.name.clone(), expected: self.spec.key_size, got: key.len() });
        }
        Ok(())
    }

    /// Slot of `key`, if present (array: the index, checked).
    fn slot(&self, key: &[u8]) -> Result<Option<u32>, MapError> {
        self.check_key(key)?;
        match &self.hash {
            None => {
                let mut idx = [0u8; 4];
                idx.copy_from_slice(key); // key length is 4 (checked above and at creation)
                let index = u32::from_le_bytes(idx);
                Ok((index < self.spec.max_entries).then_some(index))
            }
            Some(h) => Ok(Map::index(h).slot_of.get(key).copied()),
        }
    }

    fn offset(&self, slot: u32) -> usize {
        slot as usize * self.stride
    }

    /// Address of the value of `key` (what `bpf_map_lookup_elem` returns).
    pub(crate) fn lookup_addr(&self, key: &[u8]) -> Option<u64> {
        let slot = self.slot(key).ok()??;
        Some(self.values.addr() + self.offset(slot) as u64)
    }

    /// A copy of the value of `key`; `None` if absent (or, for an array, if
    /// the index is out of range).
    ///
    /// For a hash map the copy is made under the index lock, so it never
    /// mixes two updates (host or helper) or an update and a delete. A
    /// program writing the value directly through its pointer is not
    /// ordered with it (as in Linux without `BPF_F_LOCK`).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
        self.check_key(key)?;
        let guard = self.hash.as_ref().map(Map::index);
        let slot = match &guard {
            Some(h) => h.slot_of.get(key).copied(),
            None => self.slot(key)?,
        };
        let Some(slot) = slot else { return Ok(None) };
        let v = self.values.to_vec(self.offset(slot), self.spec.value_size as usize);
        drop(guard);
        // Slots are inside the region by construction (slot < max_entries).
        Ok(Some(v.expect("slot inside the value region")))
    }

    /// Sets the value of `key`.
    pub fn update(&self, key: &[u8], value: &[u8], flag: UpdateFlag) -> Result<(), MapError> {
        let name = || self.spec.name.clone();
        if value.len() != self.spec.value_size as usize {
            return Err(MapError::ValueSize { map: name(), expected: self.spec.value_size, got: value.len() });
        }
        self.check_key(key)?;
        // Held until the value is written, so that a concurrent delete cannot
        // free (and another update reuse) the slot in between.
        let mut guard = self.hash.as_ref().map(Map::index);
        let existing = match &guard {
            Some(h) => h.slot_of.get(key).copied(),
            None => self.slot(key)?,
        };
        let slot = match (&mut guard, existing, flag) {
            (_, Some(_), UpdateFlag::NoExist) => return Err(MapError::Exists { map: name() }),
            (None, None, _) => {
                let mut idx = [0u8; 4];
                idx.copy_from_slice(key); // 4 bytes, checked by slot()
                let index = u32::from_le_bytes(idx);
                return Err(MapError::IndexOutOfRange { map: name(), index, max_entries: self.spec.max_entries });
            }
            (_, Some(slot), _) => slot,
            (Some(_), None, UpdateFlag::Exist) => return Err(MapError::NotFound { map: name() }),
            (Some(h), None, _) => {
                let slot = h.free.pop().ok_or(MapError::Full { map: name(), max_entries: self.spec.max_entries })?;
                h.slot_of.insert(key.to_vec(), slot);
                h.key_of[slot as usize] = Some(key.to_vec());
                slot
            }
        };
        self.values.write(self.offset(slot), value).expect("slot inside the value region");
        drop(guard);
        Ok(())
    }

    /// Removes `key` (hash maps only).
    pub fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        let name = || self.spec.name.clone();
        self.check_key(key)?;
        let Some(h) = &self.hash else { return Err(MapError::ArrayDelete { map: name() }) };
        let mut h = Map::index(h);
        let slot = h.slot_of.remove(key).ok_or(MapError::NotFound { map: name() })?;
        h.key_of[slot as usize] = None;
        // Zeroed before the slot can be reused (the lock is still held).
        self.values.zero(self.offset(slot), self.stride).expect("slot inside the value region");
        h.free.push(slot);
        Ok(())
    }

    /// All present entries as (key, value) copies; arrays in index order,
    /// hash maps in slot order.
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let keys: Vec<Vec<u8>> = match &self.hash {
            None => (0..self.spec.max_entries).map(|i| i.to_le_bytes().to_vec()).collect(),
            Some(h) => Map::index(h).key_of.iter().flatten().cloned().collect(),
        };
        keys.into_iter().filter_map(|k| self.get(&k).ok().flatten().map(|v| (k, v))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: MapKind, key_size: u32, value_size: u32, max_entries: u32) -> MapSpec {
        MapSpec { name: "m".into(), kind, key_size, value_size, max_entries, read_only: false }
    }

    #[test]
    fn array_get_update_and_bounds() {
        let m = Map::new(spec(MapKind::Array, 4, 8, 2)).unwrap();
        assert_eq!(m.get(&1u32.to_le_bytes()).unwrap(), Some(vec![0; 8]));
        m.update(&1u32.to_le_bytes(), &7u64.to_le_bytes(), UpdateFlag::Any).unwrap();
        assert_eq!(m.get(&1u32.to_le_bytes()).unwrap(), Some(7u64.to_le_bytes().to_vec()));
        assert_eq!(m.get(&2u32.to_le_bytes()).unwrap(), None);
        assert!(matches!(m.update(&2u32.to_le_bytes(), &[0; 8], UpdateFlag::Any), Err(MapError::IndexOutOfRange { index: 2, .. })));
        assert!(matches!(m.update(&0u32.to_le_bytes(), &[0; 8], UpdateFlag::NoExist), Err(MapError::Exists { .. })));
        assert!(matches!(m.delete(&0u32.to_le_bytes()), Err(MapError::ArrayDelete { .. })));
        assert!(matches!(m.get(&[0u8; 8]), Err(MapError::KeySize { expected: 4, got: 8, .. })));
        assert_eq!(m.entries().len(), 2);
    }

    #[test]
    fn hash_insert_delete_full() {
        let m = Map::new(spec(MapKind::Hash, 2, 3, 2)).unwrap();
        assert_eq!(m.get(b"ab").unwrap(), None);
        m.update(b"ab", b"xyz", UpdateFlag::NoExist).unwrap();
        m.update(b"cd", b"uvw", UpdateFlag::Any).unwrap();
        assert!(matches!(m.update(b"ef", b"uvw", UpdateFlag::Any), Err(MapError::Full { .. })));
        assert!(matches!(m.update(b"ef", b"uvw", UpdateFlag::Exist), Err(MapError::NotFound { .. })));
        let addr = m.lookup_addr(b"ab").unwrap();
        m.delete(b"ab").unwrap();
        assert!(matches!(m.delete(b"ab"), Err(MapError::NotFound { .. })));
        assert_eq!(m.lookup_addr(b"ab"), None);
        m.update(b"ef", b"123", UpdateFlag::Any).unwrap();
        // The freed slot is reused: the old address is still map memory.
        assert_eq!(m.lookup_addr(b"ef"), Some(addr));
        let mut e = m.entries();
        e.sort();
        assert_eq!(e, vec![(b"cd".to_vec(), b"uvw".to_vec()), (b"ef".to_vec(), b"123".to_vec())]);
    }

    /// Several threads update, read and delete overlapping keys of one hash
    /// map at once: every operation succeeds or fails cleanly, the index
    /// stays consistent (no slot lost or shared), values are never torn.
    #[test]
    fn hash_is_safe_under_concurrent_update_and_delete() {
        let m = std::sync::Arc::new(Map::new(spec(MapKind::Hash, 8, 16, 8)).unwrap());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..200_000u64 {
                        let key = ((i * 7 + t) % 12).to_le_bytes();
                        let v = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                        let mut value = [0u8; 16];
                        value[..8].copy_from_slice(&v.to_le_bytes());
                        value[8..].copy_from_slice(&v.to_le_bytes());
                        match i % 3 {
                            0 => match m.update(&key, &value, UpdateFlag::Any) {
                                Ok(()) | Err(MapError::Full { .. }) => {}
                                Err(e) => panic!("update: {e}"),
                            },
                            1 => match m.delete(&key) {
                                Ok(()) | Err(MapError::NotFound { .. }) => {}
                                Err(e) => panic!("delete: {e}"),
                            },
                            _ => {
                                if let Some(got) = m.get(&key).unwrap() {
                                    // Written whole under the lock: both halves agree
                                    // (or the slot was zeroed by a delete).
                                    assert_eq!(got[..8], got[8..], "torn value");
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let entries = m.entries();
        assert!(entries.len() <= 8);
        let h = Map::index(m.hash.as_ref().unwrap());
        assert_eq!(h.slot_of.len() + h.free.len(), 8, "every slot is either used or free");
        assert_eq!(h.key_of.iter().flatten().count(), h.slot_of.len());
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(Map::new(spec(MapKind::Array, 8, 8, 1)).is_err());
        assert!(Map::new(spec(MapKind::Hash, 4, 0, 1)).is_err());
        assert!(Map::new(spec(MapKind::Hash, 4, 8, 0)).is_err());
        assert!(Map::new(spec(MapKind::Array, 4, 65536, 65536)).is_err());
    }
}
