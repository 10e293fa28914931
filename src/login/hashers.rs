//! The hashing slots: `max_parallel_hashes` threads that run the password checks, each with
//! its own argon2 working memory.
//!
//! A check waits in one queue; a free thread takes the next one the moment it finishes the
//! last, with no hop through the async runtime in between (with the slots as a semaphore
//! on the async side, each hand-over waited for a runtime thread to be scheduled beside
//! argon2 threads that kept both cores busy: the slots stood idle about a fifth of the
//! time). Each thread keeps its 19 MiB of argon2 memory between checks (a fresh one is a
//! new mapping the kernel zero-fills page by page) and frees it after [`LINGER`] without
//! work, so a quiet daemon holds none. The threads end when the service is dropped (a
//! reload builds a new one).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use argon2::Block;

/// How long a slot keeps its argon2 memory without work.
pub const LINGER: Duration = Duration::from_secs(1);

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// A check that waited longer than its limit for a slot: it was not run.
#[derive(Debug, PartialEq, Eq)]
pub struct Saturated;

/// The checks waiting for a slot, and whether the slots should end.
#[derive(Default)]
struct Queue {
    jobs: Mutex<(VecDeque<Job>, bool)>,
    ready: Condvar,
}

/// The hashing slots.
pub struct Hashers {
    queue: Arc<Queue>,
    /// Slots holding argon2 memory now (for tests and the benchmark).
    holding: Arc<AtomicUsize>,
}

impl Drop for Hashers {
    fn drop(&mut self) {
        self.queue.jobs.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.queue.ready.notify_all();
    }
}

impl Hashers {
    /// Starts `slots` threads.
    pub fn new(slots: usize) -> std::io::Result<Hashers> {
        let queue = Arc::new(Queue::default());
        let holding = Arc::new(AtomicUsize::new(0));
        for i in 0..slots.max(1) {
            let (queue, holding) = (Arc::clone(&queue), Arc::clone(&holding));
            std::thread::Builder::new()
                .name(format!("postwarden-hash{i}"))
                .spawn(move || slot(&queue, &holding))?;
        }
        Ok(Hashers { queue, holding })
    }

    /// Runs `f` on a slot with that slot's argon2 memory; `Saturated` when no slot took it
    /// within `wait` (then it never runs).
    pub async fn run<T: Send + 'static>(
        &self,
        wait: Duration,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, Saturated> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = Instant::now();
        let job: Job = Box::new(move |memory| {
            if queued.elapsed() <= wait {
                let _ = tx.send(f(memory));
            }
        });
        self.queue
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .push_back(job);
        self.queue.ready.notify_one();
        rx.await.map_err(|_| Saturated)
    }

    /// Slots holding argon2 memory now.
    pub fn holding(&self) -> usize {
        self.holding.load(Ordering::Relaxed)
    }
}

fn slot(queue: &Queue, holding: &AtomicUsize) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = {
            let mut jobs = queue.jobs.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if jobs.1 {
                    if !memory.is_empty() {
                        holding.fetch_sub(1, Ordering::Relaxed);
                    }
                    return;
                }
                if let Some(job) = jobs.0.pop_front() {
                    break job;
                }
                if memory.is_empty() {
                    jobs = queue.ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
                    continue;
                }
                let (again, waited) = queue
                    .ready
                    .wait_timeout(jobs, LINGER)
                    .unwrap_or_else(|e| e.into_inner());
                jobs = again;
                if waited.timed_out() && jobs.0.is_empty() {
                    // No work for LINGER: the memory goes back to the system.
                    memory = Vec::new();
                    holding.fetch_sub(1, Ordering::Relaxed);
                }
            }
        };
        let held = !memory.is_empty();
        // A panicking check (a bug) must not take the slot with it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory)));
        if !held && !memory.is_empty() {
            holding.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_run_on_the_slots_keep_memory_while_busy_and_free_it_when_idle() {
        let hashers = Hashers::new(2).unwrap();
        // Each job sees its slot's memory as the previous job on that slot left it.
        let mut tasks = Vec::new();
        let hashers = Arc::new(hashers);
        for _ in 0..8 {
            let h = Arc::clone(&hashers);
            tasks.push(tokio::spawn(async move {
                h.run(Duration::from_secs(10), |memory| {
                    let reused = !memory.is_empty();
                    memory.resize(1024, Block::default());
                    std::thread::sleep(Duration::from_millis(20));
                    reused
                })
                .await
                .unwrap()
            }));
        }
        let mut reused = 0;
        for t in tasks {
            reused += usize::from(t.await.unwrap());
        }
        // 8 checks on 2 slots: all but the first on each slot found memory.
        assert_eq!(reused, 6);
        assert_eq!(hashers.holding(), 2);
        std::thread::sleep(LINGER + Duration::from_millis(300));
        assert_eq!(hashers.holding(), 0, "idle slots still hold their memory");

        // A check that waited past its limit never runs.
        let h = Arc::clone(&hashers);
        let busy = tokio::spawn(async move {
            h.run(Duration::from_secs(10), |_| {
                std::thread::sleep(Duration::from_millis(300))
            })
            .await
        });
        let h = Arc::clone(&hashers);
        let busy2 = tokio::spawn(async move {
            h.run(Duration::from_secs(10), |_| {
                std::thread::sleep(Duration::from_millis(300))
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = Arc::clone(&ran);
        let late = hashers
            .run(Duration::from_millis(100), move |_| {
                r.store(true, std::sync::atomic::Ordering::SeqCst)
            })
            .await;
        assert_eq!(late, Err(Saturated));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        busy.await.unwrap().unwrap();
        busy2.await.unwrap().unwrap();

        // A panicking check loses its answer, not its slot.
        assert_eq!(
            hashers
                .run(Duration::from_secs(1), |_| -> u8 { panic!("a bug") })
                .await,
            Err(Saturated)
        );
        assert_eq!(hashers.run(Duration::from_secs(1), |_| 7).await, Ok(7));
    }
}
