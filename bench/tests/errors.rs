//! Every error is said once, in the user's words, and names the fix: one
//! test per CLI error path checks the exact text (no repeated clause).

use std::process::{Command, Output};

fn sfbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfbench")).args(args).output().expect("run sfbench")
}

/// The `error: ...` line of a failed run.
fn error_line(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    err.lines().find(|l| l.starts_with("error")).unwrap_or_else(|| panic!("no error line in:\n{err}")).to_string()
}

/// No clause of the message appears twice.
fn said_once(line: &str) {
    let parts: Vec<&str> = line.split(": ").map(str::trim).filter(|p| p.len() > 3).collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "\"{p}\" is said twice in: {line}");
    }
}

#[test]
fn mkdb_into_a_missing_directory_says_the_cause_once() {
    let o = sfbench(&["mkdb", "--out", "/proc/nope/db.sfe", "--keys", "10"]);
    let e = error_line(&o);
    said_once(&e);
    assert!(e.starts_with("error: creating /proc/nope") || e.starts_with("error: writing /proc/nope"), "{e}");
}

#[test]
fn a_missing_database_names_the_command_that_makes_one() {
    let e = error_line(&sfbench(&["run", "--db", "/nonexistent/db.sfe", "--seconds", "0.1"]));
    said_once(&e);
    assert_eq!(e, "error: opening the database /nonexistent/db.sfe (make one with sfbench mkdb): No such file or directory (os error 2)");
}

#[test]
fn nonsense_numbers_are_refused_with_the_valid_range() {
    for (args, want) in [
        (&["run", "--db", "x.sfe", "--qd", "0"][..], "1..=256"),
        (&["run", "--db", "x.sfe", "--qd", "100000"][..], "1..=256"),
        (&["run", "--db", "x.sfe", "--reactors", "0"][..], "1..=64"),
        (&["run", "--db", "x.sfe", "--threads", "0"][..], "1..=4096"),
        (&["suite", "--threads", "1,0"][..], "1..=4096"),
    ] {
        let o = sfbench(args);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
