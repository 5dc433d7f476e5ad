//! Arbitrary bytes as a program: the verifier must answer (accept or reject
//! naming an instruction of the program), never panic or hang.
#![no_main]

use ebpf_runtime::insn::{decode_all, INSN_SIZE};
use ebpf_runtime::map_spec::{MapKind, MapSpec};
use ebpf_runtime::verifier::{verify, Env, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = data.len() - data.len() % INSN_SIZE;
    let Some(prog) = decode_all(&data[..whole]) else { return };
    let maps = [
        MapSpec { name: "arr".into(), kind: MapKind::Array, key_size: 4, value_size: 16, max_entries: 4, read_only: false },
        MapSpec { name: ".rodata".into(), kind: MapKind::Array, key_size: 4, value_size: 8, max_entries: 1, read_only: true },
    ];
    // A small cap keeps each input fast; the logic is the same.
    let limits = Limits { insns_processed_max: 100_000, ..Limits::default() };
    let env = Env { maps: &maps, data_size: 4096, scratch_size: 4096, limits };
    if let Err(e) = verify(&prog, &env) {
        assert!(e.insn() <= prog.len(), "{e} names an insn outside the program");
    }
});
