//! `cedarvm check`: the whole-VM fault campaign (`vm_core::campaign`) over
//! many seeds, and with `--volumes` the tools' damaged-volume campaign
//! (`utility_mode::damage`), for long runs beyond what CI runs. Each seed runs under a
//! watchdog, so a hang is reported with its seed instead of stopping the
//! run; a failing seed prints itself and replays with `--seed`.

use serde::Serialize;
use std::sync::mpsc;
use std::time::Duration;
use utility_mode::progress::progress;
use vm_core::FaultService;
use vm_core::campaign::{Campaign, Failure, run_seed};

/// What to run.
#[derive(Clone, Debug)]
pub struct CheckRequest {
    /// The first seed.
    pub first_seed: u64,
    /// How many seeds.
    pub seeds: u64,
    /// Steps per seed.
    pub steps: u32,
    /// Force one fault service for every seed (default: alternate).
    pub service: Option<FaultService>,
    /// Seconds after which a seed counts as hung.
    pub hang_after_s: u64,
}

/// One seed that broke a rule or hung.
#[derive(Clone, Debug, Serialize)]
pub struct SeedFailure {
    /// The seed.
    pub seed: u64,
    /// The step, when it broke a rule (none if it hung).
    pub step: Option<u32>,
    /// What was wrong.
    pub message: String,
    /// The last operations before it.
    pub recent: Vec<String>,
}

/// What a check run found.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// Seeds run.
    pub seeds: u64,
    /// Steps run over all seeds.
    pub steps: u64,
    /// Drive faults injected over all seeds.
    pub faults_injected: u64,
    /// Errors the VM returned (all allowed by the model).
    pub errors_met: u64,
    /// Seeds that met a panicking drive and were poisoned (as they must).
    pub poisoned: u64,
    /// Thread switches in the seeds' semaphore schedules (no lost wake-up,
    /// never two holders).
    pub semaphore_switches: u64,
    /// Crashes of the seeds' persistent spaces survived (reopened as of a
    /// sync, page by page).
    pub restarts: u64,
    /// Seeds that failed.
    pub failures: Vec<SeedFailure>,
    /// The options a replay needs besides the seed (`--steps`, ...).
    #[serde(skip)]
    pub options: String,
}

impl CheckReport {
    /// The report for a terminal.
    pub fn table(&self) -> String {
        let mut t = format!(
            "seeds        {}\nsteps        {}\nfaults       {} injected, {} errors met as values\npoisoned     {} (a panicking drive, answered with VmError::Poisoned)\nsemaphores   {} thread switches through mset/mclear/msleep/mwakeup\nrestarts     {} crashes of a persistent space, reopened as of a sync\nfailures     {}\n",
            self.seeds,
            self.steps,
            self.faults_injected,
            self.errors_met,
            self.poisoned,
            self.semaphore_switches,
            self.restarts,
            self.failures.len()
        );
        for f in &self.failures {
            match f.step {
                Some(step) => t.push_str(&format!(
                    "\nseed {} failed at step {step}: {}\n",
                    f.seed, f.message
                )),
                None => t.push_str(&format!("\nseed {}: {}\n", f.seed, f.message)),
            }
            for op in &f.recent {
                t.push_str(&format!("  {op}\n"));
            }
            t.push_str(&format!(
                "  replay: cedarvm check --seed {}{}\n",
                f.seed, self.options
            ));
        }
        t
    }
}

/// The options of `request` that a replay of one of its seeds must repeat.
fn replay_options(request: &CheckRequest) -> String {
    let mut options = String::new();
    if request.steps != Campaign::new(0).steps {
        options.push_str(&format!(" --steps {}", request.steps));
    }
    match request.service {
        Some(FaultService::Worker) => options.push_str(" --fault-service worker"),
        Some(FaultService::InFaultingThread) => options.push_str(" --fault-service thread"),
        _ => {}
    }
    if request.hang_after_s != 60 {
        options.push_str(&format!(" --hang-after {}", request.hang_after_s));
    }
    options
}

fn campaign_for(request: &CheckRequest, seed: u64) -> Campaign {
    let mut campaign = Campaign::new(seed);
    campaign.steps = request.steps;
    if let Some(service) = request.service {
        campaign.service = service;
    }
    campaign
}

/// Runs the seeds.
pub fn check(request: &CheckRequest) -> CheckReport {
    // The campaign's armed drive panics on purpose; keep those panics off
    // the terminal (every other panic is still printed).
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("");
        if !message.contains("the armed drive panics") {
            previous(info);
        }
    }));
    let mut report = CheckReport {
        seeds: 0,
        steps: 0,
        faults_injected: 0,
        errors_met: 0,
        poisoned: 0,
        semaphore_switches: 0,
        restarts: 0,
        failures: Vec::new(),
        options: replay_options(request),
    };
    let bar = progress(request.seeds, "check");
    // Seeds near u64::MAX stop at the last one rather than wrap.
    let seeds = (0..request.seeds).map_while(|k| request.first_seed.checked_add(k));
    for seed in seeds {
        let campaign = campaign_for(request, seed);
        let (tx, rx) = mpsc::channel::<Result<_, Box<Failure>>>();
        std::thread::spawn(move || {
            let _ = tx.send(run_seed(&campaign));
        });
        report.seeds += 1;
        match rx.recv_timeout(Duration::from_secs(request.hang_after_s)) {
            Ok(Ok(outcome)) => {
                report.steps += u64::from(outcome.steps);
                report.faults_injected += outcome.faults_injected;
                report.errors_met += outcome.errors.values().sum::<u64>();
                report.poisoned += u64::from(outcome.poisoned);
                report.semaphore_switches += outcome.semaphore_switches;
                report.restarts += outcome.restarts;
            }
            Ok(Err(failure)) => report.failures.push(SeedFailure {
                seed,
                step: Some(failure.step),
                message: failure.message,
                recent: failure.recent,
            }),
            // The seed's thread ended without an answer: a panic the
            // campaign did not catch.
            Err(mpsc::RecvTimeoutError::Disconnected) => report.failures.push(SeedFailure {
                seed,
                step: None,
                message: "panicked outside the campaign's own checks".into(),
                recent: Vec::new(),
            }),
            // The hung seed's thread is left behind; the run goes on.
            Err(mpsc::RecvTimeoutError::Timeout) => report.failures.push(SeedFailure {
                seed,
                step: None,
                message: format!("hung: no answer in {} s", request.hang_after_s),
                recent: Vec::new(),
            }),
        }
        bar.inc(1);
    }
    report
}

/// What a damaged-volume run found.
#[derive(Clone, Debug, Serialize)]
pub struct VolumeCheckReport {
    /// Cases run.
    pub cases: u64,
    /// The scavenger's first verdicts, by name.
    pub verdicts: std::collections::BTreeMap<String, u64>,
    /// Cases repaired.
    pub repaired: u64,
    /// Markers read back intact after damage that left the header whole.
    pub markers_checked: u64,
    /// Cases that broke a promise, hung or panicked.
    pub failures: Vec<utility_mode::damage::CaseFailure>,
}

impl VolumeCheckReport {
    /// The report for a terminal.
    pub fn table(&self) -> String {
        let mut t = format!(
            "cases        {}
verdicts     {}
repaired     {}
markers      {} read back intact
failures     {}\n",
            self.cases,
            self.verdicts
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.repaired,
            self.markers_checked,
            self.failures.len()
        );
        for f in &self.failures {
            t.push_str(&format!(
                "\n{f}\n  replay: cedarvm check --volumes --seed {}\n",
                f.seed
            ));
        }
        t
    }
}

/// Runs damaged-volume cases `first..first + cases`, each in a fresh
/// temporary folder and under a watchdog.
pub fn check_volumes(
    first: u64,
    cases: u64,
    hang_after_s: u64,
) -> Result<VolumeCheckReport, utility_mode::ToolError> {
    use utility_mode::damage::{CaseFailure, run_case};
    let mut report = VolumeCheckReport {
        cases: 0,
        verdicts: Default::default(),
        repaired: 0,
        markers_checked: 0,
        failures: Vec::new(),
    };
    let bar = progress(cases, "check volumes");
    for seed in (0..cases).map_while(|k| first.checked_add(k)) {
        let dir = tempfile::tempdir().map_err(|source| utility_mode::ToolError::File {
            path: std::env::temp_dir(),
            source,
        })?;
        let path = dir.path().to_path_buf();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(run_case(&path, seed));
        });
        report.cases += 1;
        let failure = |message: String| CaseFailure {
            seed,
            damage: String::new(),
            message,
        };
        match rx.recv_timeout(Duration::from_secs(hang_after_s)) {
            Ok(Ok(outcome)) => {
                *report
                    .verdicts
                    .entry(format!("{:?}", outcome.verdict).to_lowercase())
                    .or_default() += 1;
                report.repaired += u64::from(outcome.repaired);
                report.markers_checked += outcome.markers_checked as u64;
            }
            Ok(Err(f)) => report.failures.push(f),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                report.failures.push(failure("panicked".into()))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                report
                    .failures
                    .push(failure(format!("hung: no answer in {hang_after_s} s")));
                // The hung case's thread still uses the folder.
                std::mem::forget(dir);
            }
        }
        bar.inc(1);
    }
    Ok(report)
}
