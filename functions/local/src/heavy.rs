//! Heavy work (database copies, Flyway migrations, health checks) and how it meets virtual time.
//!
//! A heavy job runs on this module's pool of plain threads, not on the engine's blocking pool,
//! so it does not stop the engine's virtual clock while it runs: other tenants' timers keep
//! firing and their steps keep running. The resource the job builds is ready at a simulated
//! instant (`start + duration` on the run's clock). If the job has not finished by that instant,
//! [`Pending::wait`] holds the clock there until it has, with a blocking wait on tokio's blocking
//! pool, which the engine's paused clock treats as work in progress. So every resource becomes
//! ready at the same virtual time in every run, however long the copy took for real, and tenants
//! no longer move in lockstep from one copy to the next.

use crate::clock::Clock;
use crate::error::HeavyError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed pool of worker threads fed from one queue.
pub struct HeavyPool {
    queue: Mutex<mpsc::Sender<Job>>,
    threads: usize,
}

/// Shared handle on the pool.
pub type Heavy = Arc<HeavyPool>;

impl HeavyPool {
    /// A pool of `threads` workers (at least one).
    pub fn new(threads: usize) -> Heavy {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tenantflow-heavy-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking job drops its result sender; its waiter reports it.
                        Ok(job) => {
                            let _ = catch_unwind(AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                });
            if spawned.is_err() {
                break;
            }
        }
        Arc::new(HeavyPool {
            queue: Mutex::new(tx),
            threads,
        })
    }

    /// The process-wide pool. Copies and migrations mix CPU and fsync waits, so it has more
    /// threads than cores: measured on 2 cores (200 tenants × 10,000 rows), 4 per core kept both
    /// cores busy where 1 per core left them waiting on fsync.
    pub fn shared() -> Heavy {
        static POOL: OnceLock<Heavy> = OnceLock::new();
        POOL.get_or_init(|| {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2);
            HeavyPool::new(4 * cores)
        })
        .clone()
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Starts `f` on the pool now.
    pub fn start<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Pending<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        // If no worker is left the job is dropped with its sender, and `wait` reports it lost.
        if let Ok(q) = self.queue.lock() {
            let _ = q.send(job);
        }
        Pending { rx }
    }

    /// Runs `f` while `simulated` passes on `clock`; returns at that virtual instant, once `f`
    /// is done.
    pub async fn timed<T: Send + 'static>(
        &self,
        clock: &dyn Clock,
        simulated: Duration,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HeavyError> {
        let job = self.start(f);
        clock.sleep(simulated).await;
        job.wait().await
    }
}

/// A job started on the pool.
pub struct Pending<T> {
    rx: mpsc::Receiver<T>,
}

impl<T: Send + 'static> Pending<T> {
    /// The job's result. Waits on tokio's blocking pool, which holds the engine's virtual clock
    /// still until the job is done.
    pub async fn wait(self) -> Result<T, HeavyError> {
        match self.rx.try_recv() {
            Ok(v) => return Ok(v),
            Err(mpsc::TryRecvError::Disconnected) => return Err(HeavyError::Lost),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        let rx = self.rx;
        tokio::task::spawn_blocking(move || rx.recv())
            .await
            .map_err(|source| HeavyError::Wait { source })?
            .map_err(|_| HeavyError::Lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_reports_a_panicking_one() {
        let pool = HeavyPool::new(2);
        let a = pool.start(|| 40 + 2);
        let b = pool.start(|| -> u32 { panic!("boom") });
        let c = pool.start(|| "still alive");
        assert_eq!(a.wait().await.ok(), Some(42));
        assert!(b.wait().await.unwrap_err().to_string().contains("panicked"));
        assert_eq!(c.wait().await.ok(), Some("still alive"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_job_lets_virtual_time_move_until_its_deadline() {
        use crate::clock::SystemClock;
        let pool = HeavyPool::new(1);
        let (release, gate) = mpsc::channel::<()>();
        let t0 = tokio::time::Instant::now();
        let job = pool.timed(&SystemClock, Duration::from_secs(300), move || {
            let _ = gate.recv();
            7
        });
        // This timer fires at 100 s while the job is still blocked: a job on the engine's own
        // blocking pool would have frozen time and never let it fire.
        let other = async {
            tokio::time::sleep(Duration::from_secs(100)).await;
            let _ = release.send(());
            t0.elapsed()
        };
        let (out, other_at) = tokio::join!(job, other);
        assert_eq!(other_at, Duration::from_secs(100));
        assert_eq!(out.ok(), Some(7));
        assert_eq!(t0.elapsed(), Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfinished_job_holds_virtual_time_at_its_deadline() {
        use crate::clock::SystemClock;
        use std::sync::atomic::{AtomicBool, Ordering};
        let pool = HeavyPool::new(1);
        let later_fired = Arc::new(AtomicBool::new(false));
        let t0 = tokio::time::Instant::now();
        let flag = later_fired.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            flag.store(true, Ordering::SeqCst);
        });
        // The job outlives its 1 s of virtual time (time jumps there at once); the 1.5 s timer
        // must not fire before the job is done.
        let out = pool
            .timed(&SystemClock, Duration::from_secs(1), || {
                std::thread::sleep(Duration::from_millis(20));
                7
            })
            .await;
        assert_eq!(out.ok(), Some(7));
        assert_eq!(t0.elapsed(), Duration::from_secs(1));
        assert!(!later_fired.load(Ordering::SeqCst));
    }
}
