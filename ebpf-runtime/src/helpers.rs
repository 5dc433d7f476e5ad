//! The helpers a storage function may call, by Linux id: map lookup, update
//! and delete, `ktime_get_ns` and a rate-limited `trace_printk`.
//!
//! The JIT calls these `extern "C"` functions directly with the platform's C
//! ABI, arguments in r1..r5. As in Linux, a map handle in a register is the
//! address of the map object (`vm.rs` relocates `lddw` of a map to
//! `&Map`), so no table is consulted at run time. The helpers trust their
//! pointer arguments (map, key, value, format string) because the verifier
//! proved them before the program ran: that is why they are `unsafe` and
//! crate-private. The interpreter checks the same arguments against its
//! regions before it calls the safe parts ([`lookup`], [`update`],
//! [`delete`], [`printk`]).
//!
//! Keys and values are copied out of program memory before the map is
//! touched (`progmem::with_bytes`), so `update(m, &k, lookup(m, &k), 0)`, a
//! value aliasing its own slot, is a copy of a copy and sound.

// Registers are 64-bit patterns that each helper reinterprets as its C
// prototype says (pointers, signed results, narrow printf arguments): these
// casts are the point, not accidents.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Instant;

use crate::insn::helper_id;
use crate::maps::{Map, UpdateFlag};
use crate::progmem;

/// Most debug lines a thread prints per second; more are dropped (and
/// counted in the next line that gets through).
pub const TRACE_LINES_PER_SEC: u32 = 20;
/// Longest format string read, in bytes.
pub const TRACE_FMT_BYTES_MAX: usize = 256;

const EINVAL: u64 = (-22i64) as u64;
const EPERM: u64 = (-1i64) as u64;
const EBUSY: u64 = (-16i64) as u64;

thread_local! {
    static TRACE: Cell<(Option<Instant>, u32, u32)> = const { Cell::new((None, 0, 0)) };
}

/// A helper as the JIT calls it: five argument registers in, r0 out.
pub(crate) type HelperFn = unsafe extern "C" fn(u64, u64, u64, u64, u64) -> u64;

/// The map behind a handle.
///
/// # Safety
/// `handle` must be the address of a live [`Map`] (a relocated map `lddw`;
/// the verifier proves r1 of a map helper is one), alive for `'a`.
unsafe fn map_ref<'a>(handle: u64) -> &'a Map {
    // SAFETY: the caller's contract.
    unsafe { &*(handle as usize as *const Map) }
}

/// Lookup on a map with a key already copied out of program memory: the
/// value's address or 0.
pub(crate) fn lookup(m: &Map, key: &[u8]) -> u64 {
    m.lookup_addr(key).unwrap_or(0)
}

/// Update with copied key and value: 0 or a negative errno.
pub(crate) fn update(m: &Map, key: &[u8], value: &[u8], flags: u64) -> u64 {
    if m.spec().read_only {
        return EPERM;
    }
    let Some(flag) = UpdateFlag::from_raw(flags) else { return EINVAL };
    match m.update(key, value, flag) {
        Ok(()) => 0,
        Err(e) => e.errno() as u64,
    }
}

/// Delete with a copied key: 0 or a negative errno.
pub(crate) fn delete(m: &Map, key: &[u8]) -> u64 {
    if m.spec().read_only {
        return EPERM;
    }
    match m.delete(key) {
        Ok(()) => 0,
        Err(e) => e.errno() as u64,
    }
}

/// `void *bpf_map_lookup_elem(map, key)`: the value's address or 0.
///
/// # Safety
/// `map` is a live map's address; `key` points to `key_size` readable bytes.
pub(crate) unsafe extern "C" fn map_lookup_elem(map: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the function's contract (proved by the verifier).
    let m = unsafe { map_ref(map) };
    // SAFETY: as above, for the key.
    unsafe { progmem::with_bytes(key, m.spec().key_size as usize, |k| lookup(m, k)) }
}

/// `long bpf_map_update_elem(map, key, value, flags)`: 0 or a negative errno.
///
/// # Safety
/// `map` is a live map's address; `key` and `value` point to `key_size` and
/// `value_size` readable bytes (`value` may point into the map itself).
pub(crate) unsafe extern "C" fn map_update_elem(map: u64, key: u64, value: u64, flags: u64, _: u64) -> u64 {
    // SAFETY: the function's contract.
    let m = unsafe { map_ref(map) };
    let (ks, vs) = (m.spec().key_size as usize, m.spec().value_size as usize);
    // SAFETY: the contract; both are copied before the map is written.
    let with_value = |k: &[u8]| unsafe { progmem::with_bytes(value, vs, |v| update(m, k, v, flags)) };
    // SAFETY: the contract, for the key.
    unsafe { progmem::with_bytes(key, ks, with_value) }
}

/// `long bpf_map_delete_elem(map, key)`: 0 or a negative errno.
///
/// # Safety
/// `map` is a live map's address; `key` points to `key_size` readable bytes.
pub(crate) unsafe extern "C" fn map_delete_elem(map: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the function's contract.
    let m = unsafe { map_ref(map) };
    // SAFETY: the contract, for the key.
    unsafe { progmem::with_bytes(key, m.spec().key_size as usize, |k| delete(m, k)) }
}

/// `u64 bpf_ktime_get_ns(void)` for the JIT.
extern "C" fn ktime_get_ns_c(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    ktime_get_ns()
}

/// `long bpf_trace_printk(fmt, fmt_size, a, b, c)` for the JIT.
///
/// # Safety
/// `fmt` points to `fmt_size` readable bytes.
unsafe extern "C" fn trace_printk_c(fmt: u64, fmt_size: u64, a: u64, b: u64, c: u64) -> u64 {
    let len = usize::try_from(fmt_size).unwrap_or(usize::MAX).min(TRACE_FMT_BYTES_MAX);
    // SAFETY: the function's contract (we read at most `fmt_size` bytes).
    unsafe { progmem::with_bytes(fmt, len, |f| printk(f, [a, b, c])) }
}

/// The helpers by Linux id, as the JIT calls them.
pub(crate) fn by_id(id: i64) -> Option<HelperFn> {
    let f: HelperFn = match i32::try_from(id).ok()? {
        helper_id::MAP_LOOKUP_ELEM => map_lookup_elem,
        helper_id::MAP_UPDATE_ELEM => map_update_elem,
        helper_id::MAP_DELETE_ELEM => map_delete_elem,
        helper_id::KTIME_GET_NS => ktime_get_ns_c,
        helper_id::TRACE_PRINTK => trace_printk_c,
        _ => return None,
    };
    Some(f)
}

/// `callx` in the JIT: the register holds a helper id. Unknown ids return
/// -EINVAL (the interpreter ends the run with an error instead; the
/// verifier refuses `callx`, so only unverified programs see the difference).
///
/// # Safety
/// As the contract of the helper `id` names.
pub(crate) unsafe extern "C" fn call_by_id(id: u64, a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
    match by_id(id as i64) {
        // SAFETY: the contract of the helper, passed on to our caller.
        Some(f) => unsafe { f(a, b, c, d, e) },
        None => EINVAL,
    }
}

/// `u64 bpf_ktime_get_ns(void)`: monotonic nanoseconds since the first call
/// in this process.
pub fn ktime_get_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let ns = EPOCH.get_or_init(Instant::now).elapsed().as_nanos();
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// `long bpf_trace_printk(fmt, fmt_size, a, b, c)` on format bytes already
/// copied: formats like Linux (`%d %i %u %x %c %%`, with `l`/`ll` length
/// modifiers; `%s` and `%p` print a placeholder, we never dereference an
/// argument) and logs the line at `info` level to target `bpf`. Returns the
/// line's length, or -EBUSY when the rate limit drops it.
pub fn printk(fmt: &[u8], args: [u64; 3]) -> u64 {
    let raw = fmt.split(|b| *b == 0).next().unwrap_or(&[]);
    let line = format_printk(&String::from_utf8_lossy(raw), args);
    let now = Instant::now();
    let dropped = TRACE.with(|t| {
        let (start, count, dropped) = t.get();
        let fresh = start.is_none_or(|s| now.duration_since(s).as_secs() >= 1);
        let (start, count) = if fresh { (now, 0) } else { (start.unwrap_or(now), count) };
        if count >= TRACE_LINES_PER_SEC {
            t.set((Some(start), count, dropped.saturating_add(1)));
            None
        } else {
            t.set((Some(start), count + 1, 0));
            Some(dropped)
        }
    });
    match dropped {
        None => EBUSY,
        Some(0) => {
            log::info!(target: "bpf", "{}", line.trim_end());
            line.len() as u64
        }
        Some(n) => {
            log::info!(target: "bpf", "{} ({n} earlier lines dropped by the rate limit)", line.trim_end());
            line.len() as u64
        }
    }
}

/// Formats a `trace_printk` line with up to three arguments.
pub fn format_printk(fmt: &str, args: [u64; 3]) -> String {
    let mut out = String::new();
    let mut next = args.into_iter();
    let mut chars = fmt.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '%' {
            out.push(ch);
            continue;
        }
        let mut longs = 0;
        while chars.peek() == Some(&'l') {
            chars.next();
            longs += 1;
        }
        let Some(conv) = chars.next() else { break };
        if conv == '%' {
            out.push('%');
            continue;
        }
        let v = next.next().unwrap_or(0);
        // Narrow 32-bit conversions like C's varargs would (`%d` reads an int).
        let narrow = longs == 0;
        match conv {
            'd' | 'i' if narrow => out.push_str(&(v as u32 as i32).to_string()),
            'd' | 'i' => out.push_str(&(v as i64).to_string()),
            'u' if narrow => out.push_str(&(v as u32).to_string()),
            'u' => out.push_str(&v.to_string()),
            'x' if narrow => out.push_str(&format!("{:x}", v as u32)),
            'x' => out.push_str(&format!("{v:x}")),
            'c' => out.push(char::from(v as u8)),
            's' => out.push_str("(str)"),
            'p' => out.push_str("(ptr)"),
            other => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map_spec::{MapKind, MapSpec};

    #[test]
    fn printk_formats_like_c() {
        let s = format_printk("a=%d b=%llu c=%x %% %s", [(-3i64) as u64, 42, 0x1_0000_00ff]);
        assert_eq!(s, "a=-3 b=42 c=ff % (str)");
    }

    #[test]
    #[allow(clippy::multiple_unsafe_ops_per_block)] // one contract covers the sequence
    fn map_helpers_take_the_map_address() {
        let spec = MapSpec { name: "h".into(), kind: MapKind::Hash, key_size: 8, value_size: 8, max_entries: 4, read_only: false };
        let map = Map::new(spec).unwrap();
        let h = &map as *const Map as u64;
        let key = 5u64.to_le_bytes();
        let val = 9u64.to_le_bytes();
        let (k, v) = (key.as_ptr() as u64, val.as_ptr() as u64);
        // SAFETY: `h` is a live map, `k` and `v` point to 8 readable bytes.
        unsafe {
            assert_eq!(map_lookup_elem(h, k, 0, 0, 0), 0);
            assert_eq!(map_update_elem(h, k, v, 0, 0), 0);
            let addr = map_lookup_elem(h, k, 0, 0, 0);
            assert_ne!(addr, 0);
            assert_eq!(map_update_elem(h, k, v, 1, 0), (-17i64) as u64);
            assert_eq!(map_update_elem(h, k, v, 7, 0), EINVAL);
            // The value aliases its own slot: a copy of itself.
            assert_eq!(map_update_elem(h, k, addr, 0, 0), 0);
            assert_eq!(map.get(&key).unwrap(), Some(val.to_vec()));
            assert_eq!(map_delete_elem(h, k, 0, 0, 0), 0);
            assert_eq!(map_delete_elem(h, k, 0, 0, 0), (-2i64) as u64);
        }
    }

    #[test]
    fn read_only_maps_refuse_helper_writes() {
        let spec = MapSpec { name: ".rodata".into(), kind: MapKind::Array, key_size: 4, value_size: 8, max_entries: 1, read_only: true };
        let map = Map::new(spec).unwrap();
        assert_eq!(update(&map, &0u32.to_le_bytes(), &1u64.to_le_bytes(), 0), EPERM);
    }

    #[test]
    fn printk_is_rate_limited() {
        let ok = (0..TRACE_LINES_PER_SEC + 5).filter(|_| printk(b"x\0", [0; 3]) != EBUSY).count();
        assert!(ok <= TRACE_LINES_PER_SEC as usize, "{ok} lines passed");
    }

    #[test]
    fn clock_is_monotonic() {
        let a = ktime_get_ns();
        let b = ktime_get_ns();
        assert!(b >= a);
    }
}
