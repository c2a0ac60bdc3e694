//! Dedicated threads for the index's long-running workers.

use crate::IndexError;
use std::future::Future;

/// Nice value of background work (embedding): when the cores are contended, the writer, commits
/// and request handling run first, so text stays fresh while vectors catch up.
const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority (Linux nice values are per thread).
pub(crate) fn lower_priority_of_this_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; `who = 0` is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE);
    }
}

/// Makes rayon's global pool (where candle's matrix products and the tokenizer's batch encoding
/// run) a low-priority pool. Only the first call in a process takes effect, and only if nothing
/// built the global pool before.
pub(crate) fn background_rayon_pool() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let built = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("tidings-embed-{i}"))
            .start_handler(|_| lower_priority_of_this_thread())
            .build_global();
        if let Err(e) = built {
            tracing::debug!(error = %e, "rayon's global pool was already built; embedding keeps normal priority");
        }
    });
}

/// Runs `make()`'s future to completion on a new named OS thread with its own single-threaded
/// tokio runtime (timers, and a blocking pool for `spawn_blocking`), so blocking index work
/// never runs on the application's async threads. `background` lowers the priority of the
/// thread and of its runtime's blocking threads.
pub(crate) fn spawn_with_runtime<F, Fut>(
    name: &str,
    background: bool,
    make: F,
) -> Result<std::thread::JoinHandle<()>, IndexError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread_name = name.to_string();
    std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_all();
            if background {
                lower_priority_of_this_thread();
                builder.on_thread_start(lower_priority_of_this_thread);
            }
            match builder.build() {
                Ok(rt) => rt.block_on(make()),
                Err(e) => tracing::error!(error = %e, thread = %thread_name, "worker could not start its runtime"),
            }
        })
        .map_err(|e| IndexError::internal(format!("spawn thread {name}: {e}")))
}
