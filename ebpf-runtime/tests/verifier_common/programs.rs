//! Realistic storage functions as instruction vectors, shared by the
//! acceptance tests, the differential fuzzer and the verifier bench.

use super::*;
use ebpf_runtime::insn::*;

/// B+-tree node search: 255 sorted u64 keys at data[0..2040], 256 child
/// offsets at data[2048..4096]; the key to find is scratch[0]. A bounded
/// binary search (at most 8 rounds), then next_addr[0] = child, size[0] =
/// 4096, and done = 1 when the child is 0 (a leaf).
pub fn btree_search() -> Vec<Insn> {
    Asm::new()
        .movr(R6, R1)
        .ldx(DW, R2, R6, 0) // data
        .ldx(DW, R3, R6, 272) // scratch
        .ldx(DW, R4, R3, 0) // key
        .mov(R7, 0) // lo
        .mov(R8, 255) // hi
        .mov(R9, 0) // round
        .label("loop")
        .jmp(JMP_JGE, R9, 8, "done")
        .jmpr(JMP_JGE, R7, R8, "done")
        .movr(R0, R7)
        .alur(ALU_ADD, R0, R8)
        .alu(ALU_RSH, R0, 1) // mid
        .movr(R5, R0)
        .alu(ALU_LSH, R5, 3)
        .movr(R1, R2)
        .alur(ALU_ADD, R1, R5)
        .ldx(DW, R1, R1, 0) // keys[mid]
        .alu(ALU_ADD, R9, 1)
        .jmpr(JMP_JGE, R1, R4, "right")
        .movr(R7, R0)
        .alu(ALU_ADD, R7, 1)
        .ja("loop")
        .label("right")
        .movr(R8, R0)
        .ja("loop")
        .label("done")
        .alu(ALU_LSH, R7, 3)
        .alur(ALU_ADD, R2, R7)
        .ldx(DW, R1, R2, 2048) // children[lo]
        .stx(DW, R6, R1, 16) // next_addr[0]
        .st(DW, R6, 144, 4096) // size[0]
        .jmp(JMP_JNE, R1, 0, "out")
        .st(W, R6, 8, 1) // done = 1
        .label("out")
        .ret0()
        .build()
}

/// Sums the u64s of the block greater than scratch[8] into scratch[0].
pub fn filter_reduce() -> Vec<Insn> {
    Asm::new()
        .ldx(DW, R2, R1, 0) // data
        .ldx(DW, R3, R1, 272) // scratch
        .ldx(DW, R4, R3, 8) // threshold
        .mov(R5, 0) // sum
        .mov(R6, 0) // i
        .label("loop")
        .jmp(JMP_JGE, R6, 512, "done")
        .movr(R7, R6)
        .alu(ALU_LSH, R7, 3)
        .movr(R8, R2)
        .alur(ALU_ADD, R8, R7)
        .ldx(DW, R8, R8, 0)
        .alu(ALU_ADD, R6, 1)
        .jmpr(JMP_JLE, R8, R4, "loop")
        .alur(ALU_ADD, R5, R8)
        .ja("loop")
        .label("done")
        .stx(DW, R3, R5, 0)
        .ret0()
        .build()
}

/// Looks up key 0 in the array map, null-checks, reads and writes the value.
pub fn map_lookup() -> Vec<Insn> {
    Asm::new()
        .st(W, R10, -4, 0)
        .movr(R2, R10)
        .alu(ALU_ADD, R2, -4)
        .ld_map(R1, 0)
        .call(helper_id::MAP_LOOKUP_ELEM)
        .jmp(JMP_JEQ, R0, 0, "out")
        .ldx(DW, R1, R0, 8)
        .alu(ALU_ADD, R1, 1)
        .stx(DW, R0, R1, 0)
        .label("out")
        .ret0()
        .build()
}
