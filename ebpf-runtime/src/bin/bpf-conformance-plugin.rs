//! The bpf_conformance plugin, speaking the official runner's convention
//! directly: `bpf-conformance-plugin [MEMORY_HEX] [--jit|--interp] [--elf]`,
//! the program as hex on stdin; prints r0 in hex, or the error on stderr with
//! exit status 1. (`xrp-bpf conformance-plugin` does the same behind a
//! subcommand.) Example, from bpf_conformance's build directory:
//!
//! ```text
//! bpf_conformance_runner --test_file_directory tests \
//!     --plugin_path target/release/bpf-conformance-plugin --plugin_options "--jit"
//! ```

use std::io::Read;

use ebpf_runtime::conformance;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = conformance::PluginArgs::parse(&args).and_then(|a| {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).map_err(|e| format!("cannot read stdin: {e}"))?;
        // SAFETY: the runner hands the plugin its test programs on purpose;
        // the interpreter checks every access, `--jit` runs the trusted
        // vector unchecked (the contract of `conformance::plugin`).
        unsafe { conformance::plugin(&a, &input) }
    });
    match result {
        Ok(r0) => println!("{r0:x}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
