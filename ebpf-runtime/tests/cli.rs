//! The `xrp-bpf` command line on objects built from bpf/tests.

// Test code: sizes and offsets are small; casts are checked by the assertions.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

mod common;

use std::process::{Command, Output};

fn xrp_bpf(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xrp-bpf"));
    cmd.args(args).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn xrp-bpf");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or("").as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait xrp-bpf")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn verify_accepts_and_rejects() {
    let obj = common::build_c("empty");
    let o = obj.to_str().unwrap();
    let out = xrp_bpf(&["verify", o], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.starts_with("accepted: section xrp (2 insns)") && s.contains("states") && s.contains(" ms"), "{s}");
    // node_search reads 4 KiB: with a 100-byte block it must be rejected, exit 1.
    let ns = common::build_c("node_search");
    let out = xrp_bpf(&["verify", ns.to_str().unwrap(), "--data-size", "100"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("rejected") && text(&out.stderr).contains("insn"), "{}", text(&out.stderr));
    let out = xrp_bpf(&["verify", o, "--section", "missing"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no program section `missing`"));
}

#[test]
fn run_prints_result_and_context_on_both_engines() {
    let dir = std::env::temp_dir().join(format!("xrp-bpf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut node = vec![0u8; 4096];
    for i in 0..255usize {
        let k = (i as u64 + 1) * 10;
        node[i * 8..i * 8 + 8].copy_from_slice(&k.to_le_bytes());
        node[2048 + i * 8..2048 + i * 8 + 8].copy_from_slice(&(k + 1).to_le_bytes());
    }
    let data = dir.join("node.bin");
    std::fs::write(&data, &node).unwrap();
    let key = dir.join("key.bin");
    std::fs::write(&key, 1235u64.to_le_bytes()).unwrap();
    let scratch_out = dir.join("scratch.out");
    let obj = common::build_c("node_search");
    for extra in [&[][..], &["--interp"][..]] {
        let mut args = vec!["run", obj.to_str().unwrap(), "--data", data.to_str().unwrap(), "--scratch", key.to_str().unwrap(), "--scratch-out", scratch_out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = xrp_bpf(&args, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let s = text(&out.stdout);
        assert!(s.contains("r0 = 0x0") && s.contains("done = 0") && s.contains("next_addr[0] = 0x4d9 size[0] = 4096"), "{s}");
        assert!(s.contains("scratch[0..64] = d3 04 00 00"), "{s}");
        let sc = std::fs::read(&scratch_out).unwrap();
        assert_eq!((sc.len(), &sc[16..24]), (4096, &123u64.to_le_bytes()[..]));
    }
}

#[test]
fn conformance_plugin_interface() {
    // mov r0, r2 ; exit  with 4 bytes of memory: r0 = length = 4.
    let out = xrp_bpf(&["conformance-plugin", "01020304"], Some("bf20000000000000\n9500000000000000\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "4");
    // ldxb r0, [r1+2] ; exit
    let out = xrp_bpf(&["conformance-plugin", "01020304", "--jit"], Some("7110020000000000 9500000000000000"));
    assert_eq!(text(&out.stdout).trim(), "3");
    // An unknown opcode: non-zero exit, error on stderr.
    let out = xrp_bpf(&["conformance-plugin"], Some("ff00000000000000"));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unknown opcode"), "{}", text(&out.stderr));
    let out = xrp_bpf(&["conformance-plugin"], Some("zz"));
    assert!(!out.status.success());
}

/// The standalone plugin takes the official runner's arguments directly:
/// `PLUGIN [MEMORY_HEX] [OPTIONS...] [--elf]`.
#[test]
fn standalone_plugin_speaks_the_runner_convention() {
    let plugin = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bpf-conformance-plugin"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        // The plugin may exit before reading (a bad option): ignore a broken pipe.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    };
    // ldxb r0, [r1+2] ; exit, memory as the runner sends it (spaced hex).
    for opts in [&["01 02 03 04"][..], &["01 02 03 04", "--jit"], &["01 02 03 04", "--interp"]] {
        let out = plugin(opts, "7110020000000000 9500000000000000");
        assert!(out.status.success(), "{opts:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), "3", "{opts:?}");
    }
    let out = plugin(&["", "--bogus"], "9500000000000000");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unknown option"), "{}", text(&out.stderr));
    // --elf: an object whose program is a global function in .text (no
    // SEC()), as the runner builds its ELF vectors.
    let dir = std::env::temp_dir().join(format!("plugin-elf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("f.c");
    std::fs::write(&src, "int f(unsigned char *mem) { return mem[1] * 10 + mem[3]; }\n").unwrap();
    let obj = dir.join("f.o");
    let ok = Command::new("clang").args(["-target", "bpf", "-O2", "-c"]).arg(&src).arg("-o").arg(&obj).status().expect("clang");
    assert!(ok.success());
    let hex: String = std::fs::read(&obj).unwrap().iter().map(|b| format!("{b:02x}")).collect();
    for jit in [false, true] {
        let mut args = vec!["01 02 03 04"];
        if jit {
            args.push("--jit");
        }
        args.push("--elf");
        let out = plugin(&args, &hex);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), "18", "{args:?}");
    }
}
