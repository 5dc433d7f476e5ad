//! Just enough BTF (the BPF Type Format, `.BTF` section) to read libbpf-style
//! map definitions from `SEC(".maps")`:
//!
//! ```c
//! struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64);
//!          __type(key, __u64); __type(value, __u64); } seen SEC(".maps");
//! ```
//!
//! `__uint(name, N)` is a member `int (*name)[N]` (N is the array length),
//! `__type(name, T)` a member `T *name` (the size of T is resolved). Only the
//! `.maps` data section's variables are looked at. Every offset and count is
//! checked against the section; type chains are followed at most
//! [`TYPE_DEPTH_MAX`] steps.

/// Longest chain of typedef/const/volatile/pointer steps followed.
pub const TYPE_DEPTH_MAX: usize = 32;
/// Most types read from one object.
pub const TYPES_MAX: usize = 1 << 16;

const MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Why the BTF cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    #[error("BTF: {0}")]
    Malformed(String),
    #[error("BTF: map `{map}`: {what}")]
    Map { map: String, what: String },
}

fn bad(what: impl Into<String>) -> BtfError {
    BtfError::Malformed(what.into())
}

/// A map definition read from `.maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfMap {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

#[derive(Debug, Clone)]
struct Type {
    name_off: u32,
    kind: u32,
    size_or_type: u32,
    /// ARRAY: (element type, nelems).
    array: Option<(u32, u32)>,
    /// STRUCT/UNION members and DATASEC variables: (name_off or var type, type or offset).
    members: Vec<(u32, u32)>,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32, BtfError> {
        let end = self.at.checked_add(4).ok_or_else(|| bad("offset overflow"))?;
        let s = self.b.get(self.at..end).ok_or_else(|| bad("type section truncated"))?;
        self.at = end;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn skip(&mut self, n: usize) -> Result<(), BtfError> {
        self.at = self.at.checked_add(n).filter(|e| *e <= self.b.len()).ok_or_else(|| bad("type section truncated"))?;
        Ok(())
    }
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, BtfError> {
    let s = b.get(at..at + 4).ok_or_else(|| bad("header truncated"))?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn slice(b: &[u8], start: u32, len: u32) -> Result<&[u8], BtfError> {
    let start = start as usize;
    let end = start.checked_add(len as usize).ok_or_else(|| bad("section bounds overflow"))?;
    b.get(start..end).ok_or_else(|| bad("section out of range"))
}

struct Btf<'a> {
    types: Vec<Type>,
    strings: &'a [u8],
}

impl Btf<'_> {
    fn name(&self, off: u32) -> Result<&str, BtfError> {
        let s = self.strings.get(off as usize..).ok_or_else(|| bad("name offset out of range"))?;
        let end = s.iter().position(|c| *c == 0).ok_or_else(|| bad("unterminated name"))?;
        std::str::from_utf8(&s[..end]).map_err(|_| bad("name is not UTF-8"))
    }

    /// Type `id` (1-based; 0 is void, which has no entry).
    fn get(&self, id: u32) -> Result<&Type, BtfError> {
        let i = (id as usize).checked_sub(1).ok_or_else(|| bad("reference to void"))?;
        self.types.get(i).ok_or_else(|| bad(format!("type id {id} out of range")))
    }

    /// Follows typedef/const/volatile/restrict/type-tag to the real type.
    fn strip(&self, mut id: u32) -> Result<(u32, &Type), BtfError> {
        for _ in 0..TYPE_DEPTH_MAX {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => id = t.size_or_type,
                _ => return Ok((id, t)),
            }
        }
        Err(bad("type chain too long"))
    }

    fn size(&self, id: u32, depth: usize) -> Result<u64, BtfError> {
        if depth > TYPE_DEPTH_MAX {
            return Err(bad("type nesting too deep"));
        }
        let (_, t) = self.strip(id)?;
        match t.kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT => Ok(u64::from(t.size_or_type)),
            KIND_PTR => Ok(8),
            KIND_ARRAY => {
                let (elem, n) = t.array.ok_or_else(|| bad("array without data"))?;
                self.size(elem, depth + 1)?.checked_mul(u64::from(n)).ok_or_else(|| bad("array size overflow"))
            }
            k => Err(bad(format!("type of kind {k} has no size"))),
        }
    }
}

fn parse(btf: &[u8]) -> Result<Btf<'_>, BtfError> {
    let magic = btf.get(0..2).map(|m| u16::from_le_bytes([m[0], m[1]])).ok_or_else(|| bad("header truncated"))?;
    if magic != MAGIC {
        return Err(bad(format!("bad magic {magic:#x} (big-endian BTF is not supported)")));
    }
    let hdr_len = u32_at(btf, 4)?;
    let body = btf.get(hdr_len as usize..).ok_or_else(|| bad("header length out of range"))?;
    let types_raw = slice(body, u32_at(btf, 8)?, u32_at(btf, 12)?)?;
    let strings = slice(body, u32_at(btf, 16)?, u32_at(btf, 20)?)?;
    let mut r = Reader { b: types_raw, at: 0 };
    let mut types = Vec::new();
    while r.at < types_raw.len() {
        if types.len() >= TYPES_MAX {
            return Err(bad("too many types"));
        }
        let name_off = r.u32()?;
        let info = r.u32()?;
        let size_or_type = r.u32()?;
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let mut t = Type { name_off, kind, size_or_type, array: None, members: Vec::new() };
        match kind {
            KIND_INT | KIND_VAR | KIND_DECL_TAG => r.skip(4)?,
            KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => {}
            KIND_ARRAY => {
                let elem = r.u32()?;
                let _index = r.u32()?;
                let n = r.u32()?;
                t.array = Some((elem, n));
            }
            KIND_STRUCT | KIND_UNION => {
                for _ in 0..vlen {
                    let m_name = r.u32()?;
                    let m_type = r.u32()?;
                    let _offset = r.u32()?;
                    t.members.push((m_name, m_type));
                }
            }
            KIND_ENUM => r.skip(vlen * 8)?,
            KIND_ENUM64 => r.skip(vlen * 12)?,
            KIND_FUNC_PROTO => r.skip(vlen * 8)?,
            KIND_DATASEC => {
                for _ in 0..vlen {
                    let var = r.u32()?;
                    let offset = r.u32()?;
                    let _size = r.u32()?;
                    t.members.push((var, offset));
                }
            }
            k => return Err(bad(format!("unknown type kind {k}"))),
        }
        types.push(t);
    }
    Ok(Btf { types, strings })
}

/// The maps declared in the `.maps` data section of `btf` (a `.BTF` section).
pub fn maps(btf: &[u8]) -> Result<Vec<BtfMap>, BtfError> {
    let b = parse(btf)?;
    let mut out = Vec::new();
    for sec in b.types.iter().filter(|t| t.kind == KIND_DATASEC) {
        if b.name(sec.name_off)? != ".maps" {
            continue;
        }
        for &(var_id, _offset) in &sec.members {
            let var = b.get(var_id)?;
            if var.kind != KIND_VAR {
                return Err(bad("a .maps entry is not a variable"));
            }
            let name = b.name(var.name_off)?.to_string();
            let map_err = |what: String| BtfError::Map { map: name.clone(), what };
            let (_, def) = b.strip(var.size_or_type)?;
            if def.kind != KIND_STRUCT {
                return Err(map_err("definition is not a struct".into()));
            }
            let mut m = BtfMap { name: name.clone(), map_type: 0, key_size: 0, value_size: 0, max_entries: 0 };
            for &(m_name, m_type) in &def.members {
                let field = b.name(m_name)?;
                let (_, ptr) = b.strip(m_type)?;
                if ptr.kind != KIND_PTR {
                    return Err(map_err(format!("member `{field}` is not declared with __uint or __type")));
                }
                let pointee = ptr.size_or_type;
                // __uint(field, N): pointer to an array of N ints.
                let uint = || -> Result<u32, BtfError> {
                    let (_, arr) = b.strip(pointee)?;
                    arr.array.map(|(_, n)| n).ok_or_else(|| map_err(format!("member `{field}` is not __uint(...)")))
                };
                // __type(field, T): pointer to T.
                let size_of = || -> Result<u32, BtfError> { u32::try_from(b.size(pointee, 0)?).map_err(|_| map_err(format!("`{field}` type too large"))) };
                match field {
                    "type" => m.map_type = uint()?,
                    "max_entries" => m.max_entries = uint()?,
                    "key_size" => m.key_size = uint()?,
                    "value_size" => m.value_size = uint()?,
                    "key" => m.key_size = size_of()?,
                    "value" => m.value_size = size_of()?,
                    "map_flags" => {
                        uint()?;
                    }
                    other => return Err(map_err(format!("member `{other}` is not supported (type, key, value, key_size, value_size, max_entries, map_flags)"))),
                }
            }
            out.push(m);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_headers() {
        assert!(maps(&[]).is_err());
        assert!(maps(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]).is_err());
        let mut h = vec![0x9f, 0xeb, 1, 0];
        for v in [24u32, 0, 12, 0, 0] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        // type_len 12 but no bytes: out of range.
        assert!(maps(&h).is_err());
        assert!(maps(&[0xeb, 0x9f, 1, 0, 24, 0, 0, 0]).unwrap_err().to_string().contains("magic"));
    }
}
