//! Tenants on one queue pair: each has a backlog of reads waiting for the
//! device, a budget of reads in flight and a hop limit; backlogs are served
//! round-robin, so a tenant with long chains cannot starve another.

use crate::addr::DeviceBlocks;
use fs_extents::{FileOffset, TenantId};
use std::collections::{HashMap, VecDeque};

/// A tenant's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantConfig {
    /// Most reads one chain of this tenant may issue.
    pub hops_max: u32,
    /// Most reads of this tenant in flight on one queue pair at once.
    pub inflight_max: u32,
}

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig { hops_max: crate::request::HOPS_MAX_LIMIT, inflight_max: u32::MAX }
    }
}

/// A read waiting to be issued.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingRead {
    pub chain: usize,
    /// The device blocks to read, or `None` for a hole (served as zeros, no I/O).
    pub dev: Option<DeviceBlocks>,
    /// File offset (for error messages).
    pub file_off: FileOffset,
    pub len: u32,
}

#[derive(Debug)]
pub(crate) struct TenantState {
    pub cfg: TenantConfig,
    pub backlog: VecDeque<PendingRead>,
    pub inflight: u32,
}

/// All tenants seen on a queue pair, and the round-robin cursor.
#[derive(Debug, Default)]
pub(crate) struct Tenants {
    pub list: Vec<TenantState>,
    index: HashMap<TenantId, usize>,
    cursor: usize,
    configs: HashMap<TenantId, TenantConfig>,
}

impl Tenants {
    pub fn configure(&mut self, id: TenantId, cfg: TenantConfig) {
        self.configs.insert(id, cfg);
        if let Some(&i) = self.index.get(&id) {
            self.list[i].cfg = cfg;
        }
    }

    /// The slot of tenant `id`, if it has one.
    pub fn find(&self, id: TenantId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// The slot of tenant `id`, created on first use.
    pub fn slot(&mut self, id: TenantId) -> usize {
        if let Some(&i) = self.index.get(&id) {
            return i;
        }
        let cfg = self.configs.get(&id).copied().unwrap_or_default();
        self.list.push(TenantState { cfg, backlog: VecDeque::new(), inflight: 0 });
        self.index.insert(id, self.list.len() - 1);
        self.list.len() - 1
    }

    /// The next tenant (round-robin) with a read it may issue now.
    pub fn next_ready(&mut self) -> Option<usize> {
        let n = self.list.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let t = &self.list[i];
            if !t.backlog.is_empty() && t.inflight < t.cfg.inflight_max {
                self.cursor = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(chain: usize) -> PendingRead {
        PendingRead { chain, dev: Some(DeviceBlocks { lba: nvme::Lba(0), nlb: 1 }), file_off: FileOffset(0), len: 512 }
    }

    #[test]
    fn round_robin_alternates_between_tenants() {
        let mut t = Tenants::default();
        let a = t.slot(TenantId(1));
        let b = t.slot(TenantId(2));
        for i in 0..4 {
            t.list[a].backlog.push_back(read(i));
        }
        t.list[b].backlog.push_back(read(100));
        t.list[b].backlog.push_back(read(101));
        let mut order = Vec::new();
        while let Some(i) = t.next_ready() {
            order.push(t.list[i].backlog.pop_front().unwrap().chain);
        }
        assert_eq!(order, vec![0, 100, 1, 101, 2, 3]);
    }

    #[test]
    fn inflight_budget_holds_a_tenant_back() {
        let mut t = Tenants::default();
        t.configure(TenantId(1), TenantConfig { hops_max: 10, inflight_max: 1 });
        let a = t.slot(TenantId(1));
        t.list[a].backlog.push_back(read(0));
        t.list[a].inflight = 1;
        assert_eq!(t.next_ready(), None);
        t.list[a].inflight = 0;
        assert_eq!(t.next_ready(), Some(a));
        assert_eq!(t.list[a].cfg.hops_max, 10);
    }
}
