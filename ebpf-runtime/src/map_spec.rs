//! What a program's object declares about a map: shared by the loader (which
//! reads it from the ELF), the verifier (which types map accesses by it) and
//! the map implementations (which allocate by it).

/// The kinds of map a storage function may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// `BPF_MAP_TYPE_ARRAY` (type 2): keys are `u32` indices below `max_entries`.
    Array,
    /// `BPF_MAP_TYPE_HASH` (type 1).
    Hash,
}

/// One map of a loaded object. Globals (`.rodata`, `.data`, `.bss`) are
/// single-entry array maps, as libbpf makes them; `read_only` marks `.rodata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    pub name: String,
    pub kind: MapKind,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub read_only: bool,
}
