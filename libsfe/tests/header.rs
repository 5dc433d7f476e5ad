//! The checked-in C header is what cbindgen makes from the source now.

use std::path::Path;

#[test]
fn header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new().with_crate(dir).with_config(cfg).generate().expect("cbindgen generates the header").write(&mut out);
    let path = dir.join("include/sfe.h");
    if std::env::var_os("SFE_BLESS").is_some() {
        std::fs::write(&path, &out).expect("write include/sfe.h");
    }
    let have = std::fs::read(&path).unwrap_or_default();
    assert!(have == out, "libsfe/include/sfe.h is out of date with src/ffi.rs; regenerate it: SFE_BLESS=1 cargo test -p libsfe --test header");
}
