//! A pool of worker threads: `jobs` threads take the items of a list in
//! turn, and the first error stops them all.
//!
//! A pull downloads and unpacks its layers this way, and chapter 6's push
//! uploads them: the network and the disk are used in parallel, while no
//! more than `jobs` transfers run at once (docker's
//! `--max-concurrent-downloads`, 3 by default). Not a kernel or format
//! idea: this is the one home of it, used by both.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Runs `work(i, &items[i], failed)` for every item on `jobs` threads
/// (at least one, at most one per item), and returns the results in the
/// items' order. The first error sets `failed`, which `work` may watch to
/// give up a long transfer early; no new item is started after it, and it
/// is the error returned.
pub fn run_all<T, R, E>(
    items: &[T],
    jobs: usize,
    work: impl Fn(usize, &T, &AtomicBool) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    let first_error = Mutex::new(None);
    let worker = || {
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            if i >= items.len() || failed.load(Ordering::SeqCst) {
                return;
            }
            match work(i, &items[i], &failed) {
                Ok(result) => lock(&results)[i] = Some(result),
                Err(e) => {
                    // The error first, then the flag: a worker stopped by
                    // the flag must not report its stop as the cause.
                    lock(&first_error).get_or_insert(e);
                    failed.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(worker);
        }
    });
    if let Some(e) = lock(&first_error).take() {
        return Err(e);
    }
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    // Without an error every item was done.
    Ok(results.into_iter().flatten().collect())
}

/// Locks `mutex`; a worker that panicked holding it left valid data behind.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order() {
        let items: Vec<u32> = (0..20).collect();
        let out = run_all(&items, 4, |i, n, _| Ok::<_, ()>((i, n * 2))).unwrap();
        assert_eq!(
            out,
            (0..20).map(|n| (n as usize, n * 2)).collect::<Vec<_>>()
        );
        assert!(
            run_all(&[] as &[u32], 3, |_, _, _| Ok::<u32, ()>(1))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_first_error_stops_the_rest() {
        let items: Vec<u32> = (0..100).collect();
        let started = AtomicUsize::new(0);
        let result = run_all(&items, 1, |_, &n, _| {
            started.fetch_add(1, Ordering::SeqCst);
            if n == 3 {
                Err(format!("item {n}"))
            } else {
                Ok(n)
            }
        });
        assert_eq!(result, Err("item 3".to_string()));
        assert_eq!(started.load(Ordering::SeqCst), 4);
    }
}
