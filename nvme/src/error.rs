//! Errors of the driver: one enum for queue operations, one for controller
//! bring-up and administration.

use crate::dma::DmaError;
use crate::prp::PrpError;
use crate::spec::Status;

/// Why a command could not be queued (the request is handed back with it).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue {qid} is full ({in_flight} commands in flight); poll completions and retry")]
    QueueFull { qid: u16, in_flight: usize },
    #[error("buffer of {buf} bytes is too small for {nlb} blocks of {block} bytes")]
    BufferTooSmall { buf: usize, nlb: u32, block: u32 },
    #[error("transfer of {bytes} bytes exceeds the controller's maximum of {max} bytes (MDTS)")]
    TooLarge { bytes: u64, max: u64 },
    #[error("a transfer of 0 blocks was requested")]
    ZeroBlocks,
    #[error(transparent)]
    Prp(#[from] PrpError),
    #[error("no DMA memory for a PRP list page")]
    PrpListAlloc(#[source] DmaError),
    #[error("queue {qid} has failed ({reason}); its commands were ended; create a new queue pair (after resetting the controller if it reported fatal status)")]
    Failed { qid: u16, reason: QueueFailure },
}

/// Why a queue pair entered its failed state (STYLE item 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueFailure {
    /// A completion named a command id that is not in flight: a duplicate,
    /// a corrupted entry, or an old entry read as new (phase confusion).
    #[error("the device completed command id {cid:#06x}, which is not in flight")]
    BogusCompletion { cid: u16 },
    /// A completion reported a submission-queue head outside what was submitted.
    #[error("the device reported submission-queue head {head}, outside what was submitted")]
    BogusSqHead { head: u16 },
    /// The controller reports fatal status, is not ready, or is gone (CSTS all ones).
    #[error("the controller reports fatal status or is not ready (CSTS={csts:#x})")]
    ControllerFatal { csts: u32 },
    /// Commands passed their deadline and the device answered neither them
    /// nor their aborts.
    #[error("the device stopped answering (no completion within twice the {timeout_ms} ms command timeout after an abort)")]
    Unresponsive { timeout_ms: u64 },
    /// The controller was reset ([`crate::Controller::reset`]): this queue
    /// pair's queues no longer exist on the device.
    #[error("the controller was reset; this queue pair's queues are gone from the device")]
    ControllerReset,
}

impl QueueFailure {
    /// Whether the controller itself failed (fatal status, not ready, gone,
    /// or no answer to commands and their aborts), so a new queue pair needs
    /// [`crate::Controller::reset`] first; the other failures need only a
    /// new queue pair.
    pub fn needs_reset(&self) -> bool {
        matches!(self, QueueFailure::ControllerFatal { .. } | QueueFailure::Unresponsive { .. })
    }
}

/// A command that could not be queued, handed back to its owner whole.
#[derive(Debug)]
pub struct Rejected<C> {
    pub error: QueueError,
    pub buf: Option<crate::dma::DmaBuf>,
    pub cookie: C,
}

impl<C> Rejected<C> {
    pub fn new(error: QueueError, buf: Option<crate::dma::DmaBuf>, cookie: C) -> Self {
        Rejected { error, buf, cookie }
    }
}

/// Errors of controller bring-up and administration.
#[derive(Debug, thiserror::Error)]
pub enum CtrlError {
    #[error("controller did not become {want} within {ms} ms (CAP.TO); is it a working NVMe controller?")]
    Timeout { want: &'static str, ms: u64 },
    #[error("controller reported fatal status (CSTS.CFS) during {state}; it needs a reset (unbind and rebind its driver, or reset the PCI function) before it is used again")]
    Fatal { state: &'static str },
    #[error("controller does not support the NVM command set or 4 KiB pages (CAP={cap:#x})")]
    Unsupported { cap: u64 },
    #[error("admin command {opcode:#04x} failed: {status}")]
    AdminFailed { opcode: u8, status: Status },
    #[error("admin command {opcode:#04x} did not complete within {ms} ms")]
    AdminTimeout { opcode: u8, ms: u64 },
    #[error("namespace {nsid} does not exist (controller has {count})")]
    NoSuchNamespace { nsid: u32, count: usize },
    #[error("namespace {nsid} has an unsupported LBA format (LBADS outside 512 B..64 KiB)")]
    BadLbaFormat { nsid: u32 },
    #[error("no I/O queue left: the controller granted {granted}")]
    NoQueues { granted: u16 },
    #[error("queue depth {depth} out of range 2..={max}")]
    BadDepth { depth: u32, max: u32 },
    #[error(transparent)]
    Dma(#[from] DmaError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}
