//! eBPF instruction encoding (RFC 9669, "BPF Instruction Set Architecture").
//!
//! One 8-byte slot is an [`Insn`]; a 64-bit immediate load (`lddw`) takes two
//! slots. Shared by the verifier, the loader and the interpreter glue so that
//! none of them decodes bytes on its own.

/// Size of one instruction slot in bytes.
pub const INSN_SIZE: usize = 8;

// Instruction classes (the low three bits of the opcode), RFC 9669 section 3.
pub const CLASS_LD: u8 = 0x00;
pub const CLASS_LDX: u8 = 0x01;
pub const CLASS_ST: u8 = 0x02;
pub const CLASS_STX: u8 = 0x03;
pub const CLASS_ALU: u8 = 0x04;
pub const CLASS_JMP: u8 = 0x05;
pub const CLASS_JMP32: u8 = 0x06;
pub const CLASS_ALU64: u8 = 0x07;

// Source operand bit for ALU and JMP classes.
pub const SRC_K: u8 = 0x00;
pub const SRC_X: u8 = 0x08;

// ALU operations (the high four bits), RFC 9669 section 4.1.
pub const ALU_ADD: u8 = 0x00;
pub const ALU_SUB: u8 = 0x10;
pub const ALU_MUL: u8 = 0x20;
pub const ALU_DIV: u8 = 0x30;
pub const ALU_OR: u8 = 0x40;
pub const ALU_AND: u8 = 0x50;
pub const ALU_LSH: u8 = 0x60;
pub const ALU_RSH: u8 = 0x70;
pub const ALU_NEG: u8 = 0x80;
pub const ALU_MOD: u8 = 0x90;
pub const ALU_XOR: u8 = 0xa0;
pub const ALU_MOV: u8 = 0xb0;
pub const ALU_ARSH: u8 = 0xc0;
pub const ALU_END: u8 = 0xd0;

// Jump operations (the high four bits), RFC 9669 section 4.3.
pub const JMP_JA: u8 = 0x00;
pub const JMP_JEQ: u8 = 0x10;
pub const JMP_JGT: u8 = 0x20;
pub const JMP_JGE: u8 = 0x30;
pub const JMP_JSET: u8 = 0x40;
pub const JMP_JNE: u8 = 0x50;
pub const JMP_JSGT: u8 = 0x60;
pub const JMP_JSGE: u8 = 0x70;
pub const JMP_CALL: u8 = 0x80;
pub const JMP_EXIT: u8 = 0x90;
pub const JMP_JLT: u8 = 0xa0;
pub const JMP_JLE: u8 = 0xb0;
pub const JMP_JSLT: u8 = 0xc0;
pub const JMP_JSLE: u8 = 0xd0;

// Load/store size (bits 3-4) and mode (bits 5-7), RFC 9669 section 5.
pub const SIZE_W: u8 = 0x00;
pub const SIZE_H: u8 = 0x08;
pub const SIZE_B: u8 = 0x10;
pub const SIZE_DW: u8 = 0x18;
pub const MODE_IMM: u8 = 0x00;
pub const MODE_ABS: u8 = 0x20;
pub const MODE_IND: u8 = 0x40;
pub const MODE_MEM: u8 = 0x60;
pub const MODE_MEMSX: u8 = 0x80;
pub const MODE_ATOMIC: u8 = 0xc0;

/// `lddw`: the one two-slot instruction.
pub const OP_LDDW: u8 = CLASS_LD | SIZE_DW | MODE_IMM;

// Pseudo source registers of `lddw` (as libbpf emits them after relocation).
/// `imm` is the index of a map in the object's map table: the register holds a map handle.
pub const PSEUDO_MAP_IDX: u8 = 5;
/// `imm` is a map index and the second slot's `imm` an offset into its (single) value.
pub const PSEUDO_MAP_IDX_VALUE: u8 = 6;
/// Linux's fd-based forms; the loader rewrites to the `_IDX` forms above.
pub const PSEUDO_MAP_FD: u8 = 1;
pub const PSEUDO_MAP_VALUE: u8 = 2;

// `call` source register: 0 = helper by id, 1 = local function (imm = pc-relative).
pub const CALL_HELPER: u8 = 0;
pub const CALL_LOCAL: u8 = 1;

/// Helper function ids, numbered as in Linux's `enum bpf_func_id` so that XRP
/// programs built against kernel headers call the same helpers.
pub mod helper_id {
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const MAP_UPDATE_ELEM: i32 = 2;
    pub const MAP_DELETE_ELEM: i32 = 3;
    pub const KTIME_GET_NS: i32 = 5;
    pub const TRACE_PRINTK: i32 = 6;
}

/// One decoded instruction slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Insn {
    pub opc: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// Decodes one slot (little-endian, the only byte order we load).
    pub fn decode(slot: [u8; INSN_SIZE]) -> Insn {
        Insn { opc: slot[0], dst: slot[1] & 0x0f, src: slot[1] >> 4, off: i16::from_le_bytes([slot[2], slot[3]]), imm: i32::from_le_bytes([slot[4], slot[5], slot[6], slot[7]]) }
    }

    /// Encodes one slot; `dst` and `src` must be below 16.
    pub fn encode(&self) -> [u8; INSN_SIZE] {
        assert!(self.dst < 16 && self.src < 16, "register index out of range");
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [self.opc, self.dst | (self.src << 4), off[0], off[1], imm[0], imm[1], imm[2], imm[3]]
    }

    /// The instruction class (low three bits of the opcode).
    pub fn class(&self) -> u8 {
        self.opc & 0x07
    }
}

/// Decodes a byte string into slots; `None` if its length is not a multiple of 8.
pub fn decode_all(bytes: &[u8]) -> Option<Vec<Insn>> {
    if bytes.len() % INSN_SIZE != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(INSN_SIZE)
            .map(|c| {
                let mut slot = [0u8; INSN_SIZE];
                slot.copy_from_slice(c);
                Insn::decode(slot)
            })
            .collect(),
    )
}

/// Encodes slots back into bytes.
pub fn encode_all(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.encode()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_encode_round_trip() {
        let slot = [0x61, 0x21, 0xfc, 0xff, 0x78, 0x56, 0x34, 0x12];
        let insn = Insn::decode(slot);
        assert_eq!(insn.opc, CLASS_LDX | SIZE_W | MODE_MEM);
        assert_eq!((insn.dst, insn.src), (1, 2));
        assert_eq!(insn.off, -4);
        assert_eq!(insn.imm, 0x1234_5678);
        assert_eq!(insn.encode(), slot);
    }

    #[test]
    fn decode_all_rejects_partial_slot() {
        assert!(decode_all(&[0u8; 12]).is_none());
        assert_eq!(decode_all(&[0u8; 16]).map(|v| v.len()), Some(2));
    }
}
