//! Thread-per-core reactors: each reactor thread owns one NVMe queue pair
//! and its [`ChainQueue`]; any number of client threads hand chains to it
//! through a bounded channel (a full channel makes the client wait: back
//! pressure, never a dropped chain). A reactor busy-polls while chains are in
//! flight and sleeps on its channel when it has none, so client threads
//! beyond the core count cost nothing while they wait.
//!
//! A reactor takes new chains only while its queue has room for them (at
//! most [`INTAKE_PER_POLL_MAX`] per poll, never past
//! [`ChainLimits::chains_max`]): the rest wait in the bounded channel, and a
//! client submitting to a full channel waits. A queue pair that fails is
//! reported through [`Engine::queue_failure`] and its chains end with
//! [`crate::ChainStatus::QueueFailed`]. Then the reactor builds itself a
//! new queue pair ([`EngineConfig::recover_every`]), resetting the
//! controller first when the controller itself failed (fatal status, not
//! ready, or no answer to commands and their aborts); one reset serves every
//! reactor ([`Controller::reset_if_needed`]), whose old queue pairs
//! then fail with `ControllerReset` and are rebuilt the same way. Chains that reach a reactor while it has no working
//! queue pair end at once with `QueueFailed`, never wait.
//! [`Engine::try_submit`] never waits: when every reactor's channel is full
//! it hands the chain back with [`EngineError::Busy`].

use crate::function::Function;
use crate::queue::{Callback, ChainError, ChainLimits, ChainQueue, QueueConfig};
use crate::request::{ChainRequest, ProgId};
use crate::status::{ChainOutcome, ChainStatus};
use crate::tenant::TenantConfig;
use ebpf_runtime::with_causes;
use fs_extents::{Registry, TenantId};
use nvme::{Controller, QueueError, QueueFailure};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Makes a function on the reactor thread that runs it. For BPF, use
/// [`Function::bpf_factory`]: every reactor then runs one shared instance
/// (one compiled program, one set of maps); a factory that loads the object
/// itself gives each reactor its own copy instead.
pub type FunctionFactory = Arc<dyn Fn() -> Result<Function, String> + Send + Sync>;

/// Most new chains a reactor takes from its channel per poll (fewer when its
/// queue is near [`ChainLimits::chains_max`]).
pub const INTAKE_PER_POLL_MAX: usize = 256;
/// How long an idle reactor sleeps on its channel before polling again.
const IDLE_SLEEP: Duration = Duration::from_millis(2);
/// Default of [`EngineConfig::recover_every`].
pub const RECOVER_EVERY_DEFAULT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Reactor threads (one queue pair each).
    pub reactors: usize,
    pub queue: QueueConfig,
    /// Chains waiting per reactor before `submit` blocks.
    pub channel_capacity: usize,
    /// Namespace the files live on.
    pub nsid: u32,
    pub tenants: Vec<(TenantId, TenantConfig)>,
    /// Empty polls before an idle reactor sleeps on its channel.
    pub idle_polls: u32,
    /// Pin reactor `i` to core `cores - 1 - i` (when there are more cores
    /// than reactors), so a busy-polling reactor never shares its core with
    /// the client threads that wait for it.
    pub pin_reactors: bool,
    /// Limits of each reactor's queue (chains, backlogs, read deadline).
    pub limits: ChainLimits,
    /// A reactor whose queue pair failed builds a new one (resetting the
    /// controller first if the controller failed) at once, and again at
    /// most once per this long if the new one fails too or cannot be made;
    /// meanwhile its chains end `QueueFailed`. `None`: a failed reactor
    /// stays failed until the engine is stopped.
    pub recover_every: Option<Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            reactors: 1,
            queue: QueueConfig::default(),
            channel_capacity: 1024,
            nsid: 1,
            tenants: Vec::new(),
            idle_polls: 2000,
            pin_reactors: true,
            limits: ChainLimits::default(),
            recover_every: Some(RECOVER_EVERY_DEFAULT),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("reactor {reactor} failed to start: {message}")]
    Start { reactor: usize, message: String },
    #[error("the engine has stopped")]
    Stopped,
    #[error("engine needs at least one reactor")]
    NoReactors,
    #[error("busy: every reactor's channel holds its maximum of {capacity} chains; retry once chains end")]
    Busy { capacity: usize },
}

/// A chain [`Engine::try_submit`] could not hand to a reactor, given back
/// whole with the reason ([`EngineError::Busy`] or [`EngineError::Stopped`]).
pub struct EngineRefused {
    pub request: ChainRequest,
    pub done: Callback,
    pub error: EngineError,
}

impl std::fmt::Debug for EngineRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineRefused").field("request", &self.request).field("error", &self.error).finish_non_exhaustive()
    }
}

enum Msg {
    Chain(ChainRequest, Callback),
    Stop,
}

/// A running engine: reactors and their channels.
pub struct Engine {
    senders: Vec<SyncSender<Msg>>,
    threads: Vec<JoinHandle<()>>,
    next: AtomicUsize,
    /// Per reactor: its failures and recoveries.
    health: Arc<[Health]>,
    channel_capacity: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("reactors", &self.senders.len()).finish()
    }
}

impl Engine {
    /// Starts `cfg.reactors` reactor threads on `ctrl`, each with the
    /// functions the factories make (in order: `ProgId(i)` is `functions[i]`).
    pub fn start(ctrl: Arc<Controller>, registry: Arc<Registry>, functions: Vec<FunctionFactory>, cfg: EngineConfig) -> Result<Engine, EngineError> {
        if cfg.reactors == 0 {
            return Err(EngineError::NoReactors);
        }
        let health: Arc<[Health]> = (0..cfg.reactors).map(|_| Health::default()).collect();
        let channel_capacity = cfg.channel_capacity.max(1);
        let mut engine = Engine { senders: Vec::new(), threads: Vec::new(), next: AtomicUsize::new(0), health: health.clone(), channel_capacity };
        for r in 0..cfg.reactors {
            let health = health.clone();
            let (tx, rx) = mpsc::sync_channel(channel_capacity);
            let (ready_tx, ready_rx) = mpsc::sync_channel(1);
            let (ctrl, registry, functions, cfg2) = (ctrl.clone(), registry.clone(), functions.clone(), cfg.clone());
            let core = pin_core(&cfg, r);
            let thread = std::thread::Builder::new()
                .name(format!("sfe-reactor-{r}"))
                .spawn(move || {
                    if let Some(c) = core {
                        // Best effort: an unpinned reactor still works, only with more jitter.
                        let _ = core_affinity::set_for_current(c);
                    }
                    reactor_main(Reactor { ctrl, registry, functions, cfg: cfg2, health: &health[r] }, rx, ready_tx)
                })
                .map_err(|e| EngineError::Start { reactor: r, message: e.to_string() })?;
            engine.threads.push(thread);
            engine.senders.push(tx);
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(message)) => return Err(EngineError::Start { reactor: r, message }),
                Err(_) => return Err(EngineError::Start { reactor: r, message: "reactor thread exited".into() }),
            }
        }
        Ok(engine)
    }

    pub fn reactors(&self) -> usize {
        self.senders.len()
    }

    /// Why reactor `reactor`'s queue pair last failed, if it ever has (the
    /// chains on it then ended with `QueueFailed`), and why rebuilding it
    /// failed, if it did.
    pub fn queue_failure(&self, reactor: usize) -> Option<String> {
        self.health.get(reactor).and_then(|h| h.failure.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// How many times reactor `reactor` replaced a failed queue pair with a
    /// working one.
    pub fn recoveries(&self, reactor: usize) -> u64 {
        self.health.get(reactor).map_or(0, |h| h.recoveries.load(Ordering::Relaxed))
    }

    /// Hands a chain to a reactor (round-robin); `done` runs on the reactor
    /// thread when the chain ends. Waits while that reactor's channel is full.
    pub fn submit(&self, req: ChainRequest, done: impl FnOnce(ChainOutcome) + Send + 'static) -> Result<(), EngineError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        self.senders[i].send(Msg::Chain(req, Box::new(done))).map_err(|_| EngineError::Stopped)
    }

    /// Hands a chain to a reactor without waiting: the next reactor in
    /// round-robin order whose channel has room takes it. When every
    /// channel is full (or the engine has stopped) the chain comes back
    /// whole, with [`EngineError::Busy`] (or `Stopped`), and nothing of it
    /// has run.
    pub fn try_submit(&self, req: ChainRequest, done: impl FnOnce(ChainOutcome) + Send + 'static) -> Result<(), Box<EngineRefused>> {
        let n = self.senders.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut msg = Msg::Chain(req, Box::new(done));
        let mut stopped = 0;
        for k in 0..n {
            match self.senders[(first + k) % n].try_send(msg) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(m)) => msg = m,
                Err(TrySendError::Disconnected(m)) => {
                    stopped += 1;
                    msg = m;
                }
            }
        }
        let error = if stopped == n { EngineError::Stopped } else { EngineError::Busy { capacity: self.channel_capacity } };
        match msg {
            Msg::Chain(request, done) => Err(Box::new(EngineRefused { request, done, error })),
            Msg::Stop => unreachable!("try_submit sends only chains"),
        }
    }

    /// Runs one chain and waits for its outcome.
    pub fn run(&self, req: ChainRequest) -> Result<ChainOutcome, EngineError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(req, move |o| {
            // The waiting client may have gone; nothing to do then.
            let _ = tx.send(o);
        })?;
        rx.recv().map_err(|_| EngineError::Stopped)
    }

    /// Finishes the chains in flight and stops the reactors.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        for s in &self.senders {
            let _ = s.send(Msg::Stop);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The core reactor `r` is pinned to, if pinning is on and cores outnumber reactors.
fn pin_core(cfg: &EngineConfig, r: usize) -> Option<core_affinity::CoreId> {
    if !cfg.pin_reactors {
        return None;
    }
    let cores = core_affinity::get_core_ids()?;
    if cores.len() <= cfg.reactors {
        return None;
    }
    cores.get(cores.len() - 1 - r).copied()
}

/// What a reactor reports to its engine.
#[derive(Default)]
struct Health {
    failure: Mutex<Option<String>>,
    recoveries: AtomicU64,
}

impl Health {
    fn set_failure(&self, message: String) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
    }
}

/// What a reactor thread works with.
struct Reactor<'a> {
    ctrl: Arc<Controller>,
    registry: Arc<Registry>,
    functions: Vec<FunctionFactory>,
    cfg: EngineConfig,
    health: &'a Health,
}

impl Reactor<'_> {
    /// A chain queue with a new queue pair, the functions and the tenants.
    fn queue(&self) -> Result<ChainQueue, String> {
        let cfg = &self.cfg;
        let mut q = ChainQueue::with_limits(&self.ctrl, cfg.nsid, self.registry.clone(), cfg.queue, cfg.limits).map_err(|e| with_causes(&e))?;
        for (i, f) in self.functions.iter().enumerate() {
            let id = q.add_function(f().map_err(|e| format!("function {i}: {e}"))?).map_err(|e| with_causes(&e))?;
            debug_assert_eq!(Ok(id), u32::try_from(i).map(ProgId));
        }
        for (t, c) in &cfg.tenants {
            q.configure_tenant(*t, *c);
        }
        Ok(q)
    }

    /// A new chain queue in place of one that failed with `why` (made when
    /// the controller had been reset `made_in` times). Resets the controller
    /// first when it failed, unless another reactor has reset it since.
    fn rebuild(&self, failed: &mut Option<ChainQueue>, why: QueueFailure, made_in: u64) -> Result<ChainQueue, String> {
        self.ctrl.reset_if_needed(why, made_in).map_err(|e| format!("resetting the controller: {}", with_causes(&e)))?;
        match self.queue() {
            Ok(q) => Ok(q),
            // The failed queue pair may hold the last queue id the
            // controller grants: give it back and try once more.
            Err(_) if failed.is_some() => {
                drop(failed.take());
                self.queue()
            }
            Err(e) => Err(e),
        }
    }
}

fn reactor_main(me: Reactor<'_>, rx: Receiver<Msg>, ready: SyncSender<Result<(), String>>) {
    let mut q = match me.queue() {
        Ok(q) => {
            let _ = ready.send(Ok(()));
            Some(q)
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    drop(ready);
    // Resets the controller had gone through when the queue pair was made,
    // read after making it: never lower than the truth, so a reactor never
    // takes another's old reset for one after its queue pair was made.
    let mut made_in = me.ctrl.resets();
    // While the queue pair has failed (or is gone): why, and when it was
    // last rebuilt.
    let mut down: Option<QueueFailure> = None;
    let mut rebuilt_at: Option<Instant> = None;
    // The failure's message, which a failed rebuild's reason is added to.
    let mut failed_with = String::new();
    let (cfg, health) = (&me.cfg, me.health);
    let mut stopping = false;
    let mut idle = 0u32;
    loop {
        let mut taken = 0;
        let room = q.as_ref().map_or(INTAKE_PER_POLL_MAX, |q| q.limits().chains_max.saturating_sub(q.chains_in_flight()).min(INTAKE_PER_POLL_MAX));
        while taken < room && !stopping {
            match rx.try_recv() {
                Ok(Msg::Chain(r, cb)) => {
                    start(&mut q, down, r, cb);
                    taken += 1;
                }
                Ok(Msg::Stop) | Err(TryRecvError::Disconnected) => {
                    stopping = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        let n = match q.as_mut().map(ChainQueue::poll) {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                if down.is_none() {
                    failed_with = with_causes(&e);
                    health.set_failure(failed_with.clone());
                    // A poll fails only with a failed queue pair.
                    down = Some(match e {
                        ChainError::Queue(QueueError::Failed { reason, .. }) => reason,
                        _ => QueueFailure::ControllerReset,
                    });
                }
                0
            }
            None => 0,
        };
        if let (Some(why), Some(every)) = (down, cfg.recover_every) {
            if !stopping && rebuilt_at.is_none_or(|t| t.elapsed() >= every) {
                rebuilt_at = Some(Instant::now());
                match me.rebuild(&mut q, why, made_in) {
                    Ok(new) => {
                        q = Some(new);
                        down = None;
                        made_in = me.ctrl.resets();
                        health.recoveries.fetch_add(1, Ordering::Relaxed);
                    }
                    // The latest reason only: the message never grows.
                    Err(e) => health.set_failure(format!("{failed_with}; building a new queue pair failed: {e}")),
                }
            }
        }
        if q.as_ref().is_none_or(|q| q.chains_in_flight() == 0) {
            if stopping {
                return;
            }
            if taken == 0 && n == 0 {
                idle += 1;
                if idle > cfg.idle_polls {
                    idle = 0;
                    match rx.recv_timeout(IDLE_SLEEP) {
                        Ok(Msg::Chain(r, cb)) => start(&mut q, down, r, cb),
                        Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                }
            }
        } else {
            idle = 0;
        }
    }
}

/// Starts a chain on the reactor's queue, or ends it at once when the
/// reactor has none (its queue pair failed and a new one could not be made).
fn start(q: &mut Option<ChainQueue>, down: Option<QueueFailure>, r: ChainRequest, done: Callback) {
    match q {
        Some(q) => q.submit(r, done),
        None => done(ChainOutcome::ended(ChainStatus::QueueFailed(down.unwrap_or(QueueFailure::ControllerReset)))),
    }
}
