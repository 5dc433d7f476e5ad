//! The bundled storage functions (`bpf/*.c`), built by clang as CI builds
//! them, must pass the verifier for a 4 KiB block. Needs clang (installed by
//! scripts/install-deps.sh); without it the test fails and says so.

use ebpf_runtime::gate;
use ebpf_runtime::loader::Program;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bpf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bpf")
}

fn build(src: &Path, out: &Path) {
    let include = bpf_dir().join("include");
    let status = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-mcpu=v3", "-c"])
        .arg("-I")
        .arg(&include)
        .arg(src)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run clang ({e}): install it with scripts/install-deps.sh"));
    assert!(status.success(), "clang failed on {}", src.display());
}

#[test]
fn bundled_programs_are_accepted() {
    let out_dir = std::env::temp_dir().join(format!("verifier-bundled-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("temp dir");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(bpf_dir())
        .expect("bpf/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    assert!(!sources.is_empty(), "no bundled programs in bpf/");
    for src in &sources {
        let obj = out_dir.join(src.file_name().expect("file name")).with_extension("o");
        build(src, &obj);
        let bytes = std::fs::read(&obj).expect("object written");
        let prog = Program::load(&bytes, None).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        match gate::verify(&prog, 4096) {
            Ok(stats) => println!("{}: {stats:?}", src.display()),
            Err(e) => panic!("{} rejected: {e}", src.display()),
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
