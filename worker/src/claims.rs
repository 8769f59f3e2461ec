//! The jobs this worker has claimed and not yet ended, with their tenants:
//! what it gives back if its shutdown grace runs out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ferro_db::TenantCtx;
use uuid::Uuid;

/// Shared by every running job; clones share the registry.
#[derive(Clone, Default)]
pub struct Claims(Arc<Mutex<HashMap<Uuid, TenantCtx>>>);

impl Claims {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, TenantCtx>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a claimed job until the returned guard is dropped (the job
    /// ended, or its task was aborted).
    pub fn hold(&self, job_id: Uuid, ctx: TenantCtx) -> ClaimHeld {
        self.lock().insert(job_id, ctx);
        ClaimHeld {
            claims: self.clone(),
            job_id,
        }
    }

    /// The jobs held now.
    pub fn held(&self) -> Vec<(Uuid, TenantCtx)> {
        self.lock().iter().map(|(id, ctx)| (*id, *ctx)).collect()
    }
}

/// A claimed job's registration; dropping it forgets the job.
pub struct ClaimHeld {
    claims: Claims,
    job_id: Uuid,
}

impl Drop for ClaimHeld {
    fn drop(&mut self) {
        self.claims.lock().remove(&self.job_id);
    }
}
