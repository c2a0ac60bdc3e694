//! This replica's name and the leases it holds on shared work (`store::leases`): a [`Lease`]
//! is renewed in the background every third of its time to live while its work runs, and
//! released when dropped. If the process dies, renewals stop and the lease lapses, which is
//! how another replica tells abandoned work (to recover) from work in progress (to leave alone).

use crate::store::{Store, StoreError};
use std::time::Duration;

/// Who this process is among the replicas sharing a database, and how long its leases last.
#[derive(Clone, Debug)]
pub struct Replica {
    pub name: String,
    pub lease_ttl: Duration,
}

impl Default for Replica {
    fn default() -> Self {
        Replica::new(None, Duration::from_secs(15))
    }
}

impl Replica {
    /// `name`, or one made of the host name and process id (unique on a host, readable in logs).
    pub fn new(name: Option<String>, lease_ttl: Duration) -> Replica {
        let name = name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "tidings".into());
            format!("{host}-{}", std::process::id())
        });
        Replica {
            name,
            lease_ttl: lease_ttl.max(Duration::from_secs(1)),
        }
    }
}

/// A lease this replica holds; renewed until dropped, then released.
pub struct Lease {
    name: String,
    holder: String,
    store: Store,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Takes `name` for this replica, or `None` when another replica holds it.
    pub async fn acquire(
        store: &Store,
        replica: &Replica,
        name: String,
    ) -> Result<Option<Lease>, StoreError> {
        if !store
            .acquire_lease(&name, &replica.name, replica.lease_ttl)
            .await?
        {
            return Ok(None);
        }
        let renewer = {
            let (store, name, holder, ttl) = (
                store.clone(),
                name.clone(),
                replica.name.clone(),
                replica.lease_ttl,
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    match store.acquire_lease(&name, &holder, ttl).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::error!(lease = %name, "lost a lease to another replica (renewals came too late); the work goes on here");
                        }
                        Err(e) => {
                            tracing::warn!(lease = %name, error = %e, "could not renew a lease; retrying")
                        }
                    }
                }
            })
        };
        Ok(Some(Lease {
            name,
            holder: replica.name.clone(),
            store: store.clone(),
            renewer,
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        let (store, name, holder) = (self.store.clone(), self.name.clone(), self.holder.clone());
        // Released in the background; if the runtime is gone, the lease simply lapses.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.release_lease(&name, &holder).await {
                    tracing::warn!(lease = %name, error = %e, "could not release a lease; it will lapse");
                }
            });
        }
    }
}
