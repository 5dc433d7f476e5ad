//! The function run on each completion: a verified BPF program (bpf-chain) or
//! the same traversal as a Rust closure (user-chain, the native baseline).
//! Both see the block, the scratch and an XRP context and return r0.
//!
//! A BPF function holds an `Arc<Instance>`: the program is loaded, verified
//! and compiled once, and every reactor thread that runs it shares the same
//! code and the same maps ([`Function::bpf_factory`]).

use std::sync::Arc;

use ebpf_runtime::vm::{Engine, Instance};
use ebpf_runtime::{with_causes, Program, XrpContext};

use crate::reactor::FunctionFactory;

/// A native storage function: `(block, scratch, ctx) -> r0`. `ctx` arrives
/// with `done`, `next_addr` and `size` zeroed.
pub type NativeFn = Box<dyn FnMut(&[u8], &mut [u8], &mut XrpContext) -> u64>;

/// Errors loading a BPF function.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("loading the BPF object")]
    Load(#[from] ebpf_runtime::loader::LoadError),
    #[error(transparent)]
    Vm(#[from] ebpf_runtime::vm::VmError),
}

pub enum Function {
    Bpf { inst: Arc<Instance>, data_size: u32 },
    Native { f: NativeFn, data_size: u32 },
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Function::Bpf { inst, data_size } => write!(f, "Bpf({inst:?}, data_size {data_size})"),
            Function::Native { data_size, .. } => write!(f, "Native(data_size {data_size})"),
        }
    }
}

impl Function {
    /// Loads, verifies (for blocks of `data_size` bytes) and prepares a BPF
    /// program from an ELF object.
    pub fn bpf(object: &[u8], section: Option<&str>, data_size: u32, engine: Engine) -> Result<Function, FunctionError> {
        let program = Program::load(object, section)?;
        let inst = Instance::new(&program, data_size, engine)?;
        Ok(Function::Bpf { inst: Arc::new(inst), data_size })
    }

    /// A function running an instance that may be shared with other
    /// functions (other threads): same code, same maps.
    pub fn bpf_shared(inst: Arc<Instance>, data_size: u32) -> Function {
        Function::Bpf { inst, data_size }
    }

    /// Loads, verifies and compiles once; the factory hands every reactor
    /// the same instance (its maps are shared by all of them and the host,
    /// which keeps the returned `Arc` to read them).
    pub fn bpf_factory(object: &[u8], section: Option<&str>, data_size: u32, engine: Engine) -> Result<(FunctionFactory, Arc<Instance>), FunctionError> {
        let program = Program::load(object, section)?;
        let inst = Arc::new(Instance::new(&program, data_size, engine)?);
        let shared = inst.clone();
        let factory: FunctionFactory = Arc::new(move || Ok(Function::bpf_shared(shared.clone(), data_size)));
        Ok((factory, inst))
    }

    /// The BPF instance behind the function (`None` for a native one).
    pub fn instance(&self) -> Option<&Arc<Instance>> {
        match self {
            Function::Bpf { inst, .. } => Some(inst),
            Function::Native { .. } => None,
        }
    }

    pub fn native(data_size: u32, f: impl FnMut(&[u8], &mut [u8], &mut XrpContext) -> u64 + 'static) -> Function {
        Function::Native { f: Box::new(f), data_size }
    }

    /// Largest block the function reads (its verified data size).
    pub fn data_size(&self) -> u32 {
        match self {
            Function::Bpf { data_size, .. } | Function::Native { data_size, .. } => *data_size,
        }
    }

    /// Runs once on `data` (at least `data_size` bytes) and `scratch` with
    /// the caller's context `ctx` (give it `XrpContext::default()`: the
    /// function sees what is there; the caller's, so that its 280 bytes are
    /// not copied around on every hop). Returns r0; `ctx` then holds what
    /// the function asked for.
    pub fn call(&mut self, data: &mut [u8], scratch: &mut [u8], ctx: &mut XrpContext) -> Result<u64, String> {
        match self {
            Function::Bpf { inst, .. } => inst.call(ctx, data, scratch).map_err(|e| with_causes(&e)),
            Function::Native { f, .. } => Ok(f(data, scratch, ctx)),
        }
    }
}
