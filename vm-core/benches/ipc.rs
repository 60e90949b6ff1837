//! Uncontended lock + unlock of the shared-memory primitives against a
//! System V `semop` P + V pair and a `pthread` process-shared mutex, in the
//! same run.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vm_core::shm::{Segment, Semaphore, ShmMutex, msem};

fn uncontended(c: &mut Criterion) {
    let segment = Segment::anonymous(4096).unwrap();
    let mutex = ShmMutex::at(&segment, 0).unwrap();
    let sem = segment.word(16).unwrap();
    let counting = Semaphore::at(&segment, 32).unwrap();
    counting.init(1);
    let mut group = c.benchmark_group("uncontended_lock_unlock");
    group.bench_function("shm_mutex", |b| {
        b.iter(|| drop(black_box(mutex.lock().unwrap())))
    });
    group.bench_function("bsd_mset_mclear", |b| {
        b.iter(|| {
            msem::mset(sem, true);
            msem::mclear(black_box(sem));
        })
    });
    group.bench_function("counting_semaphore_p_v", |b| {
        b.iter(|| {
            counting.p();
            counting.v();
        })
    });

    // System V: a private set of one semaphore, value 1.
    // SAFETY: plain system calls on a semaphore set this bench owns.
    let id = unsafe { libc::semget(libc::IPC_PRIVATE, 1, libc::IPC_CREAT | 0o600) };
    assert!(id >= 0, "semget failed");
    let mut up = libc::sembuf {
        sem_num: 0,
        sem_op: 1,
        sem_flg: 0,
    };
    let mut down = libc::sembuf {
        sem_num: 0,
        sem_op: -1,
        sem_flg: 0,
    };
    // SAFETY: `up` is a valid sembuf for the set `id`.
    assert_eq!(unsafe { libc::semop(id, &mut up, 1) }, 0);
    group.bench_function("baseline_sysv_semop_p_v", |b| {
        b.iter(|| {
            // SAFETY: valid sembufs for the set `id`, which outlives the loop.
            unsafe {
                libc::semop(id, &mut down, 1);
                libc::semop(id, &mut up, 1);
            }
        })
    });
    // SAFETY: removes the set this bench created.
    unsafe { libc::semctl(id, 0, libc::IPC_RMID) };

    // pthread: a process-shared mutex in the shared segment's memory is
    // what a C program would use; a boxed one with the same attribute
    // takes the same code path.
    let mut m: Box<libc::pthread_mutex_t> = Box::new(libc::PTHREAD_MUTEX_INITIALIZER);
    // SAFETY: initialises a mutex we own, with a process-shared attribute.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_mutex_init(&mut *m, &attr);
    }
    group.bench_function("baseline_pthread_pshared_mutex", |b| {
        b.iter(|| {
            // SAFETY: the mutex was initialised above and outlives the loop.
            unsafe {
                libc::pthread_mutex_lock(&mut *m);
                libc::pthread_mutex_unlock(&mut *m);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, uncontended);
criterion_main!(benches);
