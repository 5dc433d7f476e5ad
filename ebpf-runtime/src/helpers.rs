//! The helpers a storage function may call, by Linux id: map lookup, update
//! and delete, `ktime_get_ns` and a rate-limited `trace_printk`.
//!
//! rbpf calls helpers as plain `fn(u64, u64, u64, u64, u64) -> u64`, without a
//! context, so the maps of the running program are installed in a thread-local
//! for the duration of a call ([`install_maps`]); a map handle in a register is
//! an index into that table, checked on every call. Pointer arguments (keys,
//! values, format strings) are trusted to be readable for the sizes the map or
//! the caller declares: the verifier proves that before the program runs, and
//! this module is where that trust is spent (each `unsafe` says so).

// Registers are 64-bit patterns that each helper reinterprets as its C
// prototype says (pointers, signed results, narrow printf arguments): these
// casts are the point, not accidents.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::OnceLock;
use std::time::Instant;

use crate::insn::helper_id;
use crate::maps::{Map, UpdateFlag};

/// Most debug lines a thread prints per second; more are dropped (and
/// counted in the next line that gets through).
pub const TRACE_LINES_PER_SEC: u32 = 20;
/// Longest format string read, in bytes.
pub const TRACE_FMT_BYTES_MAX: usize = 256;

const EINVAL: u64 = (-22i64) as u64;
const EPERM: u64 = (-1i64) as u64;
const EBUSY: u64 = (-16i64) as u64;

thread_local! {
    static MAPS: Cell<*const [Map]> = const { Cell::new(std::ptr::slice_from_raw_parts(std::ptr::null(), 0)) };
    static TRACE: Cell<(Option<Instant>, u32, u32)> = const { Cell::new((None, 0, 0)) };
}

/// Keeps a program's maps visible to the helpers on this thread; restores
/// the previous table when dropped (calls may nest).
#[derive(Debug)]
pub(crate) struct MapsInstalled<'a> {
    previous: *const [Map],
    _maps: PhantomData<&'a [Map]>,
}

/// Makes `maps` the table the helpers of this thread use until the guard drops.
pub(crate) fn install_maps(maps: &[Map]) -> MapsInstalled<'_> {
    let previous = MAPS.with(|m| m.replace(maps as *const [Map]));
    MapsInstalled { previous, _maps: PhantomData }
}

impl Drop for MapsInstalled<'_> {
    fn drop(&mut self) {
        MAPS.with(|m| m.set(self.previous));
    }
}

fn with_map<R>(handle: u64, f: impl FnOnce(&Map) -> R) -> Option<R> {
    let table = MAPS.with(|m| m.get());
    if table.is_null() {
        return None;
    }
    // SAFETY: a non-null table was installed by `install_maps` from a live
    // `&[Map]` whose borrow the guard holds until it resets the pointer.
    let maps = unsafe { &*table };
    let map = maps.get(usize::try_from(handle).ok()?)?;
    Some(f(map))
}

/// Reads `len` bytes at a program-supplied address.
///
/// # Safety
/// `addr..addr+len` must be readable: the verifier proves it for every helper
/// argument (keys and values point to `key_size`/`value_size` initialised
/// bytes; the format string to `fmt_size` bytes).
unsafe fn program_bytes<'a>(addr: u64, len: usize) -> &'a [u8] {
    // SAFETY: the caller's contract; the result is only read during the helper call.
    unsafe { std::slice::from_raw_parts(addr as usize as *const u8, len) }
}

/// `void *bpf_map_lookup_elem(map, key)`: the value's address or 0.
pub fn map_lookup_elem(map: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    with_map(map, |m| {
        // SAFETY: verified program: `key` points to key_size readable bytes.
        let k = unsafe { program_bytes(key, m.spec().key_size as usize) };
        m.lookup_addr(k).unwrap_or(0)
    })
    .unwrap_or(0)
}

/// `long bpf_map_update_elem(map, key, value, flags)`: 0 or a negative errno.
pub fn map_update_elem(map: u64, key: u64, value: u64, flags: u64, _: u64) -> u64 {
    with_map(map, |m| {
        if m.spec().read_only {
            return EPERM;
        }
        let Some(flag) = UpdateFlag::from_raw(flags) else { return EINVAL };
        // SAFETY: verified program: key and value point to key_size and
        // value_size readable bytes.
        let k = unsafe { program_bytes(key, m.spec().key_size as usize) };
        // SAFETY: as above, for the value.
        let v = unsafe { program_bytes(value, m.spec().value_size as usize) };
        // The value may alias the map's own storage (copying an entry onto
        // another); `update` copies with `ptr::copy_nonoverlapping` from a
        // slice it does not write through, and a slot never overlaps another.
        match m.update(k, v, flag) {
            Ok(()) => 0,
            Err(e) => e.errno() as u64,
        }
    })
    .unwrap_or(EINVAL)
}

/// `long bpf_map_delete_elem(map, key)`: 0 or a negative errno.
pub fn map_delete_elem(map: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    with_map(map, |m| {
        if m.spec().read_only {
            return EPERM;
        }
        // SAFETY: verified program: `key` points to key_size readable bytes.
        let k = unsafe { program_bytes(key, m.spec().key_size as usize) };
        match m.delete(k) {
            Ok(()) => 0,
            Err(e) => e.errno() as u64,
        }
    })
    .unwrap_or(EINVAL)
}

/// `u64 bpf_ktime_get_ns(void)`: monotonic nanoseconds since the first call
/// in this process.
pub fn ktime_get_ns(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let ns = EPOCH.get_or_init(Instant::now).elapsed().as_nanos();
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// `long bpf_trace_printk(fmt, fmt_size, a, b, c)`: formats like Linux
/// (`%d %i %u %x %c %%`, with `l`/`ll` length modifiers; `%s` and `%p` print
/// a placeholder, we never dereference an argument) and logs the line at
/// `info` level to target `bpf`. Returns the line's length, or -EBUSY when
/// the rate limit drops it.
pub fn trace_printk(fmt: u64, fmt_size: u64, a: u64, b: u64, c: u64) -> u64 {
    let len = usize::try_from(fmt_size).unwrap_or(usize::MAX).min(TRACE_FMT_BYTES_MAX);
    // SAFETY: verified program: `fmt` points to `fmt_size` readable bytes
    // (we read at most that many).
    let raw = unsafe { program_bytes(fmt, len) };
    let raw = raw.split(|b| *b == 0).next().unwrap_or(&[]);
    let line = format_printk(&String::from_utf8_lossy(raw), [a, b, c]);
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

/// The helper table registered with rbpf: (Linux id, function).
pub fn table() -> [(i32, rbpf::Helper); 5] {
    [
        (helper_id::MAP_LOOKUP_ELEM, map_lookup_elem),
        (helper_id::MAP_UPDATE_ELEM, map_update_elem),
        (helper_id::MAP_DELETE_ELEM, map_delete_elem),
        (helper_id::KTIME_GET_NS, ktime_get_ns),
        (helper_id::TRACE_PRINTK, trace_printk),
    ]
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
    fn map_helpers_use_installed_table_and_check_handles() {
        let spec = MapSpec { name: "h".into(), kind: MapKind::Hash, key_size: 8, value_size: 8, max_entries: 4, read_only: false };
        let maps = vec![Map::new(spec).unwrap()];
        let key = 5u64.to_le_bytes();
        let val = 9u64.to_le_bytes();
        let (k, v) = (key.as_ptr() as u64, val.as_ptr() as u64);
        // Without a table every call fails cleanly.
        assert_eq!(map_lookup_elem(0, k, 0, 0, 0), 0);
        let guard = install_maps(&maps);
        assert_eq!(map_lookup_elem(0, k, 0, 0, 0), 0);
        assert_eq!(map_update_elem(0, k, v, 0, 0), 0);
        assert_ne!(map_lookup_elem(0, k, 0, 0, 0), 0);
        assert_eq!(map_update_elem(0, k, v, 1, 0), (-17i64) as u64);
        assert_eq!(map_update_elem(0, k, v, 7, 0), EINVAL);
        assert_eq!(map_lookup_elem(1, k, 0, 0, 0), 0, "handle out of range");
        assert_eq!(map_delete_elem(0, k, 0, 0, 0), 0);
        assert_eq!(map_delete_elem(0, k, 0, 0, 0), (-2i64) as u64);
        drop(guard);
        assert_eq!(map_update_elem(0, k, v, 0, 0), EINVAL);
    }

    #[test]
    fn read_only_maps_refuse_helper_writes() {
        let spec = MapSpec { name: ".rodata".into(), kind: MapKind::Array, key_size: 4, value_size: 8, max_entries: 1, read_only: true };
        let maps = vec![Map::new(spec).unwrap()];
        let _g = install_maps(&maps);
        let key = 0u32.to_le_bytes();
        let val = 1u64.to_le_bytes();
        assert_eq!(map_update_elem(0, key.as_ptr() as u64, val.as_ptr() as u64, 0, 0), EPERM);
    }

    #[test]
    fn printk_is_rate_limited() {
        let fmt = b"x\0";
        let ok = (0..TRACE_LINES_PER_SEC + 5).filter(|_| trace_printk(fmt.as_ptr() as u64, 2, 0, 0, 0) != EBUSY).count();
        assert!(ok <= TRACE_LINES_PER_SEC as usize, "{ok} lines passed");
    }

    #[test]
    fn clock_is_monotonic() {
        let a = ktime_get_ns(0, 0, 0, 0, 0);
        let b = ktime_get_ns(0, 0, 0, 0, 0);
        assert!(b >= a);
    }
}
