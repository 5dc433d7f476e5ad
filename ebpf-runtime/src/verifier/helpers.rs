//! The helper whitelist: argument and return types per helper id (ids as
//! in Linux's `enum bpf_func_id`, see `insn::helper_id`).

use crate::insn::helper_id;

/// What a helper argument must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// A map handle (`lddw` with `PSEUDO_MAP_IDX`).
    Map,
    /// Pointer to `key_size` initialised bytes (size of the map in r1).
    Key,
    /// Pointer to `value_size` initialised bytes (size of the map in r1).
    Value,
    /// An initialised scalar.
    Scalar,
    /// Pointer to as many initialised bytes as the next argument says.
    Mem,
    /// A constant size (> 0) for the preceding `Mem`.
    ConstSize,
    /// A scalar or nothing (unused variadic argument); never a pointer.
    OptScalar,
}

/// What a helper returns in r0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Scalar,
    /// Pointer to a value of the map in r1, or null.
    MapValueOrNull,
}

/// A helper's signature.
#[derive(Debug, Clone, Copy)]
pub struct Proto {
    pub name: &'static str,
    pub args: &'static [Arg],
    pub ret: Ret,
}

/// The signature of helper `id`, or `None` if it is not whitelisted.
pub fn proto(id: i32) -> Option<Proto> {
    Some(match id {
        helper_id::MAP_LOOKUP_ELEM => Proto { name: "map_lookup_elem", args: &[Arg::Map, Arg::Key], ret: Ret::MapValueOrNull },
        helper_id::MAP_UPDATE_ELEM => Proto { name: "map_update_elem", args: &[Arg::Map, Arg::Key, Arg::Value, Arg::Scalar], ret: Ret::Scalar },
        helper_id::MAP_DELETE_ELEM => Proto { name: "map_delete_elem", args: &[Arg::Map, Arg::Key], ret: Ret::Scalar },
        helper_id::KTIME_GET_NS => Proto { name: "ktime_get_ns", args: &[], ret: Ret::Scalar },
        helper_id::TRACE_PRINTK => Proto { name: "trace_printk", args: &[Arg::Mem, Arg::ConstSize, Arg::OptScalar, Arg::OptScalar, Arg::OptScalar], ret: Ret::Scalar },
        _ => return None,
    })
}
