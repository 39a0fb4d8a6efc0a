//! The tokio runtime the daemon runs on: tokio's default worker count (the CPUs the process
//! may use), each worker pinned to its own CPU (`[server] pin_workers`, on by default).
//!
//! Why pin: on a 2-vCPU VM, perf showed the kernel running both workers on one CPU through
//! most of a cron burst while the other CPU idled; one worker seemed to wait out the other's
//! time slice (it started runs 3.8 ms into the burst, burst after burst). The last run of a
//! burst of 1,000 started about 7 ms after the instant at the median, about 5 ms pinned
//! (docs/benchmarks.md). Threads that are not workers (the blocking pool, SQLite's threads)
//! are left to the kernel.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn build(pin_workers: bool) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let cpus = allowed_cpus();
    if pin_workers && cpus.len() > 1 {
        let next = AtomicUsize::new(0);
        // Only workers park, so this hook sees each worker thread and no other.
        builder.on_thread_park(move || pin_once(&cpus, &next));
    }
    builder.build()
}

thread_local! {
    static PINNED: Cell<bool> = const { Cell::new(false) };
}

/// Pins the calling worker to the next of `cpus`, the first time it parks.
fn pin_once(cpus: &[usize], next: &AtomicUsize) {
    if PINNED.get() {
        return;
    }
    PINNED.set(true);
    let cpu = cpus[next.fetch_add(1, Ordering::Relaxed) % cpus.len()];
    match pin_current_thread(cpu) {
        Ok(()) => tracing::debug!(cpu, "runtime worker pinned"),
        Err(err) => tracing::warn!(cpu, error = %err, "pinning a runtime worker failed"),
    }
}

/// The CPUs this process may run on (its affinity mask: taskset, systemd's CPUAffinity=).
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most
    // `size_of::<cpu_set_t>()` bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as above; `cpu` is below CPU_SETSIZE (it came from `allowed_cpus`).
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_pinned_one_per_allowed_cpu() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty(), "this process may run somewhere");
        if cpus.len() < 2 {
            return;
        }
        let runtime = build(true).expect("runtime");
        // Each worker reports the CPUs it may run on, from inside a task that lands on it.
        let masks: Vec<Vec<usize>> = runtime.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    tokio::spawn(async {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        allowed_cpus()
                    })
                })
                .collect();
            let mut masks = Vec::new();
            for task in tasks {
                masks.push(task.await.expect("task"));
            }
            masks
        });
        for mask in &masks {
            assert_eq!(mask.len(), 1, "a worker may run on one CPU only: {mask:?}");
            assert!(cpus.contains(&mask[0]));
        }
    }
}
