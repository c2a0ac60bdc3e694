//! Dedicated threads for the index's long-running workers.

use crate::IndexError;
use std::future::Future;

/// Runs `make()`'s future to completion on a new named OS thread with its own single-threaded
/// tokio runtime (timers, and a blocking pool for `spawn_blocking`), so blocking index work
/// never runs on the application's async threads.
pub(crate) fn spawn_with_runtime<F, Fut>(
    name: &str,
    make: F,
) -> Result<std::thread::JoinHandle<()>, IndexError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread_name = name.to_string();
    std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(make()),
            Err(e) => tracing::error!(error = %e, thread = %thread_name, "worker could not start its runtime"),
        })
        .map_err(|e| IndexError::internal(format!("spawn thread {name}: {e}")))
}
