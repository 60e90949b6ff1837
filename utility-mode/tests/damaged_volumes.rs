//! The damaged-volume campaign (`utility_mode::damage`): a few hundred
//! seeds, each a random volume damaged one way, each call bounded by a
//! watchdog. `cedarvm check --volumes --cases N` runs more.

use std::sync::mpsc;
use std::time::Duration;
use utility_mode::damage::run_case;

const CASES: u64 = 240;

#[test]
fn damaged_volumes_keep_the_tools_promises() {
    let mut verdicts = std::collections::BTreeMap::new();
    for seed in 0..CASES {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(run_case(&path, seed));
        });
        // A hang, not a timing check: a case takes milliseconds.
        let outcome = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(outcome) => outcome,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("case {seed} hangs"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("case {seed} panicked"),
        };
        let outcome = outcome.unwrap_or_else(|failure| panic!("{failure}"));
        *verdicts
            .entry(format!("{:?}", outcome.verdict))
            .or_insert(0u32) += 1;
    }
    println!("verdicts over {CASES} cases: {verdicts:?}");
    // The campaign reaches every verdict: a generator that only made clean
    // volumes would check nothing.
    for verdict in ["Clean", "Repairable", "Unrecoverable"] {
        assert!(
            verdicts.contains_key(verdict),
            "no {verdict} case: {verdicts:?}"
        );
    }
}
