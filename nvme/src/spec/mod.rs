//! NVMe spec structures, one `#[repr(C)]` type each, with compile-time size
//! and offset checks. Section numbers refer to the NVM Express Base
//! Specification 2.0 and the NVM Command Set Specification 1.0.

pub mod cmd;
pub mod cqe;
pub mod identify;
pub mod regs;

pub use cmd::{AdminOpcode, IoOpcode, Sqe};
pub use cqe::{Cqe, Status, StatusCodeType};
pub use identify::{IdentifyController, IdentifyNamespace, LbaFormat};
