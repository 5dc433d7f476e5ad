//! Runs every bpf_conformance vector in `../shared/conformance/tests` (beside
//! the repository root) through our interpreter and our JIT, unverified (the
//! vectors are trusted test programs). Every vector must pass on both.

use std::path::PathBuf;

use ebpf_runtime::conformance;
use ebpf_runtime::Engine;

/// `../shared/conformance/tests` beside the repository: the first ancestor
/// of the crate that has `shared/conformance/tests` (a worktree may sit one
/// level deeper than the main checkout).
fn vectors_dir() -> PathBuf {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    crate_dir.ancestors().map(|a| a.join("shared/conformance/tests")).find(|p| p.is_dir()).unwrap_or_else(|| crate_dir.join("../../shared/conformance/tests"))
}

/// Outcome of one vector on one engine: Ok or the reason it failed.
fn check(case: &conformance::TestCase, engine: Engine) -> Result<(), String> {
    let prog = conformance::program(case)?;
    let mut mem = case.mem.clone();
    // SAFETY: conformance vectors are trusted test programs; the JIT runs
    // them unchecked, the interpreter checks them.
    let got = unsafe { conformance::run(&prog, &mut mem, engine) };
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
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("conformance vectors not found at {} ({e}); they live in ../shared/conformance/tests beside the repository", dir.display()));
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "data")).collect();
    files.sort();
    assert!(!files.is_empty(), "no .data files in {}", dir.display());
    let engines = [Engine::Interpreter, Engine::Jit];
    let (mut passed, mut failed) = (0, Vec::new());
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let outcome = conformance::parse(&text).map_err(|e| e.to_string()).and_then(|case| {
            let results: Vec<(Engine, Result<(), String>)> = engines.iter().map(|&e| (e, check(&case, e))).collect();
            let fails: Vec<String> = results.iter().filter_map(|(e, r)| r.as_ref().err().map(|m| format!("{e:?}: {m}"))).collect();
            if fails.is_empty() {
                Ok(())
            } else {
                Err(fails.join("; "))
            }
        });
        match outcome {
            Ok(()) => passed += 1,
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    println!("conformance: {passed} of {} passed on {:?}", files.len(), engines);
    assert!(failed.is_empty(), "{} vectors failed:\n{}", failed.len(), failed.join("\n"));
    assert_eq!(passed, 313, "the suite has 313 vectors");
}
