//! The deterministic driver: simulated faulting processes on the drives'
//! virtual clock, driving the VM's real fault service (queue order,
//! seek-ahead choice, replacement, write-back) one step at a time, with no
//! dependence on thread scheduling. Same inputs, same figures.
//!
//! # The model
//!
//! `N` processes each make a sequence of page accesses, thinking
//! `think_ns` between them. An access to a resident page is a hit and costs
//! no virtual time. A miss queues a fault (first come, first served). The
//! one fault server — the monitor holder, as in the seed — takes the head
//! of the queue when it is free, passes the next queued fault as the
//! seek-ahead target, and serves it with the same code as a real fault, on the
//! drives; the faulting process resumes when the service's transfers are
//! done. The software time between requests (restart the faultee, take the
//! next fault) is the drive model's software gap.
//!
//! Requires a VM whose drives are all simulated.

use crate::error::VmError;
use crate::space::AddressSpace;
use crate::state::TAG_RESIDENT;
use crate::vocabulary::VAddr;

use disk_channel::rng::SplitMix64;
use runtable::{Interval, PageNumber};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Which pages the processes touch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessPattern {
    /// Uniformly random pages.
    #[serde(alias = "Random")]
    Random,
    /// Each process scans its own share of the pages in order, wrapping.
    #[serde(alias = "Sequential")]
    Sequential,
    /// Zipf-distributed page popularity with skew `s` (page rank `k` is
    /// chosen with probability proportional to `1 / k^s`; ranks are
    /// scattered over the interval).
    #[serde(alias = "Zipf")]
    Zipf {
        /// The skew.
        s: f64,
    },
}

/// A simulated workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Concurrent faulting processes.
    pub processes: usize,
    /// Accesses each process makes.
    pub accesses_per_process: u64,
    /// Virtual time a process computes between two accesses.
    pub think_ns: u64,
    /// Which pages.
    pub pattern: AccessPattern,
    /// Fraction of accesses that write (making pages dirty).
    pub write_fraction: f64,
    /// Seed of the page choices.
    pub seed: u64,
    /// Touch every `stride`-th page of the interval only (1: every page), so
    /// that a small working set can be spread over a whole drive.
    pub stride: u64,
}

impl Workload {
    /// The pages of `interval` the workload touches.
    pub fn pages(&self, interval: Interval) -> impl Iterator<Item = PageNumber> + use<> {
        let stride = self.stride.max(1);
        (0..interval.count.0 / stride).map(move |k| PageNumber(interval.page.0 + k * stride))
    }
}

/// What a simulated run measured, in virtual time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Virtual time from the first access to the last completion.
    pub virtual_ns: u64,
    /// Accesses made.
    pub accesses: u64,
    /// Accesses that hit.
    pub hits: u64,
    /// Faults served (queued misses).
    pub faults: u64,
    /// Mean fault service time (queueing included), nanoseconds.
    pub fault_mean_ns: u64,
    /// 99th percentile fault service time, nanoseconds.
    pub fault_p99_ns: u64,
    /// Pages read from the drives.
    pub page_ins: u64,
    /// Pages written to the drives.
    pub page_outs: u64,
    /// Transfers with a seek-ahead hint.
    pub seek_aheads_issued: u64,
    /// Hints the next transfer used.
    pub seek_aheads_used: u64,
    /// What the disk model says the used hints saved: `Σ min(seek, gap)`.
    pub model_saving_ns: u64,
    /// Drive busy time (seek, rotation, transfer), nanoseconds.
    pub drive_busy_ns: u64,
}

struct Process {
    rng: SplitMix64,
    ready_ns: u64,
    left: u64,
    waiting: bool,
    cursor: u64,
}

struct Queued {
    process: usize,
    page: u64,
    write: bool,
    arrival_ns: u64,
}

/// Precomputed cumulative Zipf weights over `n` ranks.
fn zipf_cdf(n: u64, s: f64) -> Vec<f64> {
    let mut total = 0.0;
    let mut cdf = Vec::with_capacity(n as usize);
    for rank in 1..=n {
        total += 1.0 / (rank as f64).powf(s);
        cdf.push(total);
    }
    for c in &mut cdf {
        *c /= total;
    }
    cdf
}

impl AddressSpace {
    /// Runs `workload` over the pages of `interval` (allocated, and best
    /// written and flushed first so that faults read) on the drives' virtual
    /// clock. Errors if a drive is not simulated.
    pub fn simulate(&self, interval: Interval, workload: &Workload) -> Result<Report, VmError> {
        let stride = workload.stride.max(1);
        let pages = interval.count.0 / stride;
        if pages == 0 {
            return Err(VmError::BadArgument {
                call: "simulate",
                reason: format!("a stride of {stride} leaves no page of {interval}"),
            });
        }
        let (start_ns, before) = {
            let monitor = self.lock_monitor();
            let volume = monitor.volume.as_ref().ok_or(VmError::Config {
                field: "backing",
                reason: "simulation needs a volume of simulated drives".into(),
            })?;
            let channel = volume.channel();
            let start = channel.virtual_time_ns().ok_or(VmError::Config {
                field: "backing",
                reason: "simulation needs every drive to be simulated".into(),
            })?;
            (start, (channel.total_stats(), monitor.counters))
        };
        let cdf = match workload.pattern {
            AccessPattern::Zipf { s } => zipf_cdf(pages, s),
            _ => Vec::new(),
        };
        let n = workload.processes.max(1);
        let mut processes: Vec<Process> = (0..n)
            .map(|i| Process {
                rng: SplitMix64::new(workload.seed ^ (i as u64).wrapping_mul(0x9E37_79B9)),
                ready_ns: start_ns,
                left: workload.accesses_per_process,
                waiting: false,
                cursor: pages * i as u64 / n as u64,
            })
            .collect();
        let mut queue: VecDeque<Queued> = VecDeque::new();
        let mut server_free_ns = start_ns;
        let mut end_ns = start_ns;
        let mut service_ns: Vec<u64> = Vec::new();
        let (mut accesses, mut hits) = (0u64, 0u64);
        loop {
            let next_process = processes
                .iter()
                .enumerate()
                .filter(|(_, p)| !p.waiting && p.left > 0)
                .min_by_key(|(i, p)| (p.ready_ns, *i))
                .map(|(i, p)| (i, p.ready_ns));
            let next_serve = queue.front().map(|q| server_free_ns.max(q.arrival_ns));
            match (next_process, next_serve) {
                (Some((i, t)), serve) if serve.is_none_or(|s| t <= s) => {
                    let process = &mut processes[i];
                    let offset = match workload.pattern {
                        AccessPattern::Random => process.rng.below(pages),
                        AccessPattern::Sequential => {
                            let page = process.cursor % pages;
                            process.cursor += 1;
                            page
                        }
                        AccessPattern::Zipf { .. } => {
                            let u = process.rng.unit();
                            let rank =
                                cdf.partition_point(|&c| c < u).min(pages as usize - 1) as u64;
                            // Scatter ranks so hot pages are not neighbours.
                            rank.wrapping_mul(0x9E37_79B9_7F4A_7C15) % pages
                        }
                    };
                    let write = process.rng.unit() < workload.write_fraction;
                    let page = interval.page.0 + offset * stride;
                    accesses += 1;
                    if self.states().load(page).tag() == TAG_RESIDENT {
                        hits += 1;
                        self.access(page, write)?;
                        process.left -= 1;
                        process.ready_ns = t + workload.think_ns;
                    } else {
                        process.waiting = true;
                        queue.push_back(Queued {
                            process: i,
                            page,
                            write,
                            arrival_ns: t,
                        });
                    }
                }
                (_, Some(pick_ns)) => {
                    let head = queue.pop_front().expect("a queued fault");
                    // The next transfer: the first queued fault on another
                    // page that is not resident (a fault on the same page
                    // will find it in, and costs no transfer).
                    let next = queue
                        .iter()
                        .map(|q| q.page)
                        .find(|&p| p != head.page && self.states().load(p).tag() != TAG_RESIDENT);
                    let done_ns = {
                        let mut monitor = self.lock_monitor();
                        let channel = monitor.volume.as_ref().expect("checked").channel();
                        channel.idle_until(pick_ns);
                        // A busy page cannot occur: nothing else runs.
                        let _ = self.serve(&mut monitor, head.page, next, false)?;
                        let channel = monitor.volume.as_ref().expect("checked").channel();
                        channel.virtual_time_ns().expect("simulated").max(pick_ns)
                    };
                    self.access(head.page, head.write)?;
                    service_ns.push(done_ns - head.arrival_ns);
                    server_free_ns = done_ns;
                    end_ns = end_ns.max(done_ns);
                    let process = &mut processes[head.process];
                    process.waiting = false;
                    process.left -= 1;
                    process.ready_ns = done_ns + workload.think_ns;
                }
                _ => break,
            }
        }
        let monitor = self.lock_monitor();
        let after = monitor
            .volume
            .as_ref()
            .expect("checked")
            .channel()
            .total_stats();
        let counters = monitor.counters;
        service_ns.sort_unstable();
        let faults = service_ns.len() as u64;
        let p99 = if service_ns.is_empty() {
            0
        } else {
            service_ns[((service_ns.len() - 1) * 99) / 100]
        };
        Ok(Report {
            virtual_ns: end_ns - start_ns,
            accesses,
            hits,
            faults,
            fault_mean_ns: service_ns
                .iter()
                .sum::<u64>()
                .checked_div(faults)
                .unwrap_or(0),
            fault_p99_ns: p99,
            page_ins: counters.page_ins - before.1.page_ins,
            page_outs: counters.page_outs - before.1.page_outs,
            seek_aheads_issued: after.seek_aheads_issued - before.0.seek_aheads_issued,
            seek_aheads_used: after.seek_aheads_used - before.0.seek_aheads_used,
            model_saving_ns: after.seek_ahead_overlap_ns - before.0.seek_ahead_overlap_ns,
            drive_busy_ns: after.busy_ns - before.0.busy_ns,
        })
    }

    /// One 8-byte access to resident `page` through the safe API.
    fn access(&self, page: u64, write: bool) -> Result<(), VmError> {
        let addr = VAddr(self.address_of(PageNumber(page)).0);
        if write {
            self.write(addr, &page.to_le_bytes())
        } else {
            let mut word = [0u8; 8];
            self.read(addr, &mut word)
        }
    }
}
