//! The semaphore set against a model of System V `semop`: operations apply
//! all or none, in order within a call, with no-wait, wait-for-zero and the
//! `SEMVMX` limit; and under many threads at once, units are conserved.

use proptest::prelude::*;
use std::time::Duration;
use vm_core::shm::{SEMVMX, Segment, SemError, SemOp, SemaphoreSet};

const N: u16 = 4;

/// The model: apply all or none.
fn model_semop(values: &mut [u32], ops: &[SemOp]) -> Result<(), SemError> {
    let mut copy = values.to_vec();
    let mut blocked = false;
    for op in ops {
        let v = &mut copy[usize::from(op.num)];
        match op.op {
            0 => blocked |= *v != 0,
            d if d > 0 => {
                *v += d as u32;
                if *v > SEMVMX {
                    return Err(SemError::Range { num: op.num });
                }
            }
            d => match v.checked_sub(u32::from(d.unsigned_abs())) {
                Some(n) if !blocked => *v = n,
                _ => blocked = true,
            },
        }
        if blocked {
            break;
        }
    }
    if blocked {
        return Err(SemError::WouldBlock);
    }
    values.copy_from_slice(&copy);
    Ok(())
}

fn op() -> impl Strategy<Value = SemOp> {
    (0..N, -3i16..=3).prop_map(|(num, op)| SemOp {
        num,
        op,
        nowait: true,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn semop_matches_the_model(
        initial in prop::collection::vec(0u32..4, N as usize),
        calls in prop::collection::vec(prop::collection::vec(op(), 1..5), 1..30),
    ) {
        let segment = Segment::anonymous(4096).unwrap();
        let set = SemaphoreSet::create(&segment, 64, N).unwrap();
        let mut model = initial.clone();
        for (i, &v) in initial.iter().enumerate() {
            set.setval(i as u16, v).unwrap();
        }
        for ops in calls {
            let got = set.semop(&ops);
            let want = model_semop(&mut model, &ops);
            prop_assert_eq!(&got, &want, "ops {:?}", ops);
            for (i, &v) in model.iter().enumerate() {
                prop_assert_eq!(set.getval(i as u16).unwrap(), v);
            }
        }
    }
}

#[test]
fn values_past_semvmx_are_refused_and_unknown_semaphores_named() {
    let segment = Segment::anonymous(4096).unwrap();
    let set = SemaphoreSet::create(&segment, 0, 2).unwrap();
    set.setval(0, SEMVMX).unwrap();
    assert_eq!(
        set.semop(&[SemOp {
            num: 0,
            op: 1,
            nowait: false
        }]),
        Err(SemError::Range { num: 0 })
    );
    assert_eq!(set.setval(1, SEMVMX + 1), Err(SemError::Range { num: 1 }));
    assert_eq!(
        set.semop(&[SemOp {
            num: 9,
            op: 1,
            nowait: false
        }]),
        Err(SemError::NoSuchSemaphore { num: 9, count: 2 })
    );
    assert_eq!(
        set.semtimedop(
            &[SemOp {
                num: 1,
                op: -1,
                nowait: false
            }],
            Duration::from_millis(5)
        ),
        Err(SemError::TimedOut)
    );
}

#[test]
fn a_sleeping_semop_wakes_when_its_operations_can_proceed() {
    let segment = Segment::anonymous(4096).unwrap();
    let set = SemaphoreSet::create(&segment, 0, 2).unwrap();
    std::thread::scope(|s| {
        // Takes one unit of each, atomically: must wait for both.
        let taker = s.spawn(|| {
            set.semop(&[
                SemOp {
                    num: 0,
                    op: -1,
                    nowait: false,
                },
                SemOp {
                    num: 1,
                    op: -1,
                    nowait: false,
                },
            ])
        });
        set.semop(&[SemOp {
            num: 0,
            op: 1,
            nowait: false,
        }])
        .unwrap();
        std::thread::sleep(Duration::from_millis(10));
        // Only one of two is there: the taker still waits, and took nothing.
        assert_eq!(set.getval(0).unwrap(), 1);
        set.semop(&[SemOp {
            num: 1,
            op: 1,
            nowait: false,
        }])
        .unwrap();
        taker.join().unwrap().unwrap();
    });
    assert_eq!((set.getval(0).unwrap(), set.getval(1).unwrap()), (0, 0));
    // Wait-for-zero.
    set.setval(0, 1).unwrap();
    std::thread::scope(|s| {
        let zero = s.spawn(|| {
            set.semop(&[SemOp {
                num: 0,
                op: 0,
                nowait: false,
            }])
        });
        std::thread::sleep(Duration::from_millis(5));
        set.semop(&[SemOp {
            num: 0,
            op: -1,
            nowait: false,
        }])
        .unwrap();
        zero.join().unwrap().unwrap();
    });
}

#[test]
fn many_threads_moving_units_between_semaphores_conserve_them() {
    let segment = Segment::anonymous(4096).unwrap();
    let set = SemaphoreSet::create(&segment, 0, 3).unwrap();
    for i in 0..3 {
        set.setval(i, 10).unwrap();
    }
    std::thread::scope(|s| {
        for t in 0..4u16 {
            s.spawn(move || {
                for k in 0..2_000u16 {
                    let (from, to) = ((t + k) % 3, (t + k + 1) % 3);
                    // Move one unit atomically from `from` to `to`.
                    set.semop(&[
                        SemOp {
                            num: from,
                            op: -1,
                            nowait: false,
                        },
                        SemOp {
                            num: to,
                            op: 1,
                            nowait: false,
                        },
                    ])
                    .unwrap();
                }
            });
        }
    });
    let total: u32 = (0..3).map(|i| set.getval(i).unwrap()).sum();
    assert_eq!(total, 30);
}
