//! Runs every bpf_conformance vector in `../shared/conformance/tests` (beside
//! the repository root) through rbpf's interpreter and JIT. A failure must be
//! listed in `conformance-known-failures.txt` (`file.data  reason`); a listed
//! test that passes is reported so the list can shrink (and fails the suite,
//! so the list stays honest).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ebpf_runtime::conformance;
use ebpf_runtime::Engine;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/tests")
}

fn known_failures() -> BTreeMap<String, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance-known-failures.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, reason) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            assert!(!reason.trim().is_empty(), "known failure `{name}` needs a reason");
            (name.to_string(), reason.trim().to_string())
        })
        .collect()
}

/// Outcome of one vector on one engine: Ok or the reason it failed.
fn check(case: &conformance::TestCase, engine: Engine) -> Result<(), String> {
    let prog = conformance::program(case)?;
    let mut mem = case.mem.clone();
    let got = conformance::run(&prog, &mut mem, engine);
    match (&case.error, case.result, got) {
        (Some(_), _, Err(_)) => Ok(()),
        (Some(e), _, Ok(v)) => Err(format!("expected error `{e}`, got r0={v:#x}")),
        (None, Some(want), Ok(v)) if v == want => Ok(()),
        (None, Some(want), Ok(v)) => Err(format!("r0={v:#x}, expected {want:#x}")),
        (None, _, Err(e)) => Err(e),
        (None, None, Ok(v)) => Err(format!("no expected result in the vector (r0={v:#x})")),
    }
}

#[test]
fn conformance_vectors() {
    let dir = vectors_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!("conformance vectors not found at {} ({e}); they live in ../shared/conformance/tests beside the repository", dir.display())
    });
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "data")).collect();
    files.sort();
    assert!(!files.is_empty(), "no .data files in {}", dir.display());
    let known = known_failures();
    let mut engines = vec![Engine::Interpreter];
    if cfg!(target_arch = "x86_64") {
        engines.push(Engine::Jit);
    }
    let (mut passed, mut unexpected, mut now_passing) = (0, Vec::new(), Vec::new());
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let outcome = conformance::parse(&text).map_err(|e| e.to_string()).and_then(|case| {
            let results: Vec<(Engine, Result<(), String>)> = engines.iter().map(|&e| (e, check(&case, e))).collect();
            let fails: Vec<String> = results.iter().filter_map(|(e, r)| r.as_ref().err().map(|m| format!("{e:?}: {m}"))).collect();
            if fails.is_empty() { Ok(()) } else { Err(fails.join("; ")) }
        });
        match (outcome, known.get(&name)) {
            (Ok(()), None) => passed += 1,
            (Ok(()), Some(_)) => now_passing.push(name),
            (Err(_), Some(_)) => {}
            (Err(e), None) => unexpected.push(format!("{name}: {e}")),
        }
    }
    let missing: Vec<&String> = known.keys().filter(|k| !files.iter().any(|p| p.file_name().and_then(|n| n.to_str()) == Some(k.as_str()))).collect();
    println!("conformance: {passed} of {} passed on {:?}, {} known failures", files.len(), engines, known.len());
    assert!(unexpected.is_empty(), "unexpected failures (fix, or list with a reason in tests/conformance-known-failures.txt):\n{}", unexpected.join("\n"));
    assert!(now_passing.is_empty(), "listed as known failures but now pass (remove them from the list): {now_passing:?}");
    assert!(missing.is_empty(), "known failures naming no vector file: {missing:?}");
}
