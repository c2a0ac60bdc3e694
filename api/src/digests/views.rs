//! JSON views of stored digests and runs (secrets never shown back).

use super::types::DigestBody;
use crate::store::records::{self, DigestRecord};
use crate::store::{DigestRow, RunRow};
use serde_json::{json, Value};

/// A digest as the API shows it: the stored record converted back to the request body's shape.
/// A record that does not read is shown as stored (running it fails with `corrupt_digest`).
pub(super) fn digest_view(d: &DigestRow) -> Value {
    let spec = match records::read::<DigestRecord>(&d.spec) {
        Ok(r) => serde_json::to_value(DigestBody::from(r)).unwrap_or(Value::Null),
        Err(_) => {
            let mut raw = d.spec.clone();
            if let Value::Object(o) = &mut raw {
                o.remove("version");
            }
            raw
        }
    };
    let mut v = json!({
        "id": d.id,
        "object": "digest",
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    });
    if let (Value::Object(o), Value::Object(spec)) = (&mut v, spec) {
        o.extend(spec);
    }
    if let Some(hooks) = v.get_mut("webhooks").and_then(Value::as_array_mut) {
        for h in hooks {
            if let Some(o) = h.as_object_mut() {
                o.remove("secret");
                o.insert("secret_set".into(), Value::Bool(true));
            }
        }
    }
    v["feed_url"] = json!(format!("/v1/digests/{}/feed.atom", d.id));
    v
}

pub(super) fn run_view(r: &RunRow) -> Value {
    json!({
        "id": r.id,
        "object": "digest.run",
        "digest_id": r.digest_id,
        "status": r.status,
        "reason": r.reason,
        "scheduled_for": r.scheduled_for,
        "as_of": r.as_of,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "output": r.output,
        "markdown": r.markdown,
        "error": r.error,
    })
}
