//! What can go wrong in a libsfe call, and the negative errno each failure
//! is returned as across the C interface.

use chaining::ChainStatus;

/// Errors of libsfe calls (chains that ran and failed are [`Error::Chain`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} is NULL")]
    Null { what: &'static str },
    #[error("{what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error("unknown program handle {0} (never loaded on this engine, or unloaded)")]
    UnknownProg(i64),
    #[error("file descriptor {fd}")]
    BadFd {
        fd: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("file descriptor {fd} is not a regular file")]
    NotRegular { fd: i32 },
    #[error("the file is on {file_dev}, not on {engine_dev}, the device this engine drives; open an engine on {file_dev} (SFE_DEVICE) or move the file")]
    NotOnDevice { file_dev: String, engine_dev: String },
    #[error("the file's extents")]
    Extents(#[from] fs_extents::FiemapError),
    #[error("registering the file with the engine")]
    Registry(#[from] fs_extents::AccessError),
    #[error("opening the engine's device {path}")]
    Device {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the engine could not start: {0}")]
    Start(String),
    #[error("{0}")]
    ProgRejected(String),
    #[error("reading the program object {path}")]
    ProgRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("this thread's queue pair")]
    Queue(#[from] chaining::ChainError),
    #[error("the chain ended: {0}")]
    Chain(ChainStatus),
    #[error("the engine is closed")]
    Closed,
    #[error("internal error (a bug in libsfe): {0}")]
    Panic(String),
}

impl Error {
    /// The positive errno this error is reported as (negated at the boundary).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Null { .. } | Error::Invalid { .. } => libc::EINVAL,
            Error::UnknownProg(_) | Error::BadFd { .. } => libc::EBADF,
            Error::NotRegular { .. } => libc::EINVAL,
            Error::NotOnDevice { .. } => libc::EXDEV,
            Error::Extents(fs_extents::FiemapError::Unallocated { .. }) => libc::EAGAIN,
            Error::Extents(_) | Error::Registry(_) => libc::EIO,
            Error::Device { source, .. } | Error::ProgRead { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::Start(_) => libc::ENODEV,
            Error::ProgRejected(_) => libc::EINVAL,
            Error::Queue(_) => libc::EIO,
            Error::Chain(s) => chain_errno(s),
            Error::Closed => libc::EBADF,
            Error::Panic(_) => libc::EFAULT,
        }
    }
}

/// The errno of a chain that did not end `Done`.
pub fn chain_errno(s: &ChainStatus) -> i32 {
    match s {
        ChainStatus::Done => 0,
        ChainStatus::Aborted { .. } => libc::ECANCELED,
        ChainStatus::HopLimit { .. } => libc::ELOOP,
        ChainStatus::Access { .. } => libc::EFAULT,
        ChainStatus::Stale { .. } => libc::ESTALE,
        ChainStatus::Device { .. } => libc::EIO,
        ChainStatus::BadSize { .. } | ChainStatus::Invalid(_) => libc::EINVAL,
        ChainStatus::Program { .. } => libc::ENOEXEC,
        ChainStatus::Submit(_) => libc::ENOMEM,
        ChainStatus::Timeout { .. } => libc::ETIMEDOUT,
        ChainStatus::QueueFailed(_) => libc::EIO,
        ChainStatus::Busy { .. } => libc::EBUSY,
    }
}

/// How a chain ended, as the C enum `sfe_status`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SfeStatus {
    /// The program set `done` (or the chain drained): success.
    SFE_STATUS_DONE = 0,
    /// The program returned non-zero.
    SFE_STATUS_ABORTED = 1,
    /// More reads than the hop limit.
    SFE_STATUS_HOP_LIMIT = 2,
    /// A read outside the file (or crossing extents).
    SFE_STATUS_ACCESS = 3,
    /// The file changed during the chain: retry.
    SFE_STATUS_STALE = 4,
    /// The device failed a read.
    SFE_STATUS_DEVICE = 5,
    /// A read size that is 0, not a multiple of 512, or over the program's data size.
    SFE_STATUS_BAD_SIZE = 6,
    /// The runtime could not run the program.
    SFE_STATUS_PROGRAM = 7,
    /// A malformed request.
    SFE_STATUS_INVALID = 8,
    /// A read could not be queued (out of DMA memory).
    SFE_STATUS_SUBMIT = 9,
    /// No chain ran: the call failed before starting one (see `sfe_last_error`).
    SFE_STATUS_NOT_STARTED = 10,
    /// A read passed its deadline on the device.
    SFE_STATUS_TIMEOUT = 11,
    /// The thread's queue pair failed (the device misbehaved or stopped).
    SFE_STATUS_QUEUE_FAILED = 12,
    /// A limit of the queue was reached: retry later.
    SFE_STATUS_BUSY = 13,
}

impl SfeStatus {
    pub fn of(s: &ChainStatus) -> SfeStatus {
        match s {
            ChainStatus::Done => SfeStatus::SFE_STATUS_DONE,
            ChainStatus::Aborted { .. } => SfeStatus::SFE_STATUS_ABORTED,
            ChainStatus::HopLimit { .. } => SfeStatus::SFE_STATUS_HOP_LIMIT,
            ChainStatus::Access { .. } => SfeStatus::SFE_STATUS_ACCESS,
            ChainStatus::Stale { .. } => SfeStatus::SFE_STATUS_STALE,
            ChainStatus::Device { .. } => SfeStatus::SFE_STATUS_DEVICE,
            ChainStatus::BadSize { .. } => SfeStatus::SFE_STATUS_BAD_SIZE,
            ChainStatus::Program { .. } => SfeStatus::SFE_STATUS_PROGRAM,
            ChainStatus::Invalid(_) => SfeStatus::SFE_STATUS_INVALID,
            ChainStatus::Submit(_) => SfeStatus::SFE_STATUS_SUBMIT,
            ChainStatus::Timeout { .. } => SfeStatus::SFE_STATUS_TIMEOUT,
            ChainStatus::QueueFailed(_) => SfeStatus::SFE_STATUS_QUEUE_FAILED,
            ChainStatus::Busy { .. } => SfeStatus::SFE_STATUS_BUSY,
        }
    }
}
