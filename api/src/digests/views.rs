//! JSON views of stored digests, runs and deliveries (secrets never shown back).

use super::output::OutputView;
use super::types::DigestBody;
use crate::store::records::{self, DigestRecord};
use crate::store::{DeliveryRow, DeliveryStatus, DigestRow, RunRow, RunStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// A digest as the API shows it: its id and times around its definition.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Digest)]
pub(crate) struct DigestView {
    id: String,
    /// `digest`.
    object: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The definition as it was sent, except that each webhook shows `secret_set: true` in
    /// place of its secret.
    #[serde(flatten)]
    #[schema(value_type = DigestBody)]
    spec: Map<String, Value>,
    /// The digest's Atom feed.
    feed_url: String,
}

/// A digest as the API shows it: the stored record converted back to the request body's shape.
/// A record that does not read is shown as stored (running it fails with `corrupt_digest`).
pub(super) fn digest_view(d: &DigestRow) -> DigestView {
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
    let mut spec = match spec {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    for key in ["id", "object", "created_at", "updated_at", "feed_url"] {
        spec.remove(key);
    }
    if let Some(hooks) = spec.get_mut("webhooks").and_then(Value::as_array_mut) {
        for h in hooks {
            if let Some(o) = h.as_object_mut() {
                o.remove("secret");
                o.insert("secret_set".into(), Value::Bool(true));
            }
        }
    }
    DigestView {
        id: d.id.clone(),
        object: "digest",
        created_at: d.created_at,
        updated_at: d.updated_at,
        spec,
        feed_url: format!("/v1/digests/{}/feed.atom", d.id),
    }
}

/// One run of a digest: `running`, then `succeeded` with its output or `failed` with the error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DigestRun)]
pub(crate) struct RunView {
    id: String,
    /// `digest.run`.
    object: &'static str,
    digest_id: String,
    status: RunStatus,
    /// `manual`, `schedule`, or `missed` (a slot missed while the server was down).
    reason: String,
    /// The schedule slot this run is for (scheduled runs).
    scheduled_for: Option<DateTime<Utc>>,
    /// The end of the run's window.
    as_of: DateTime<Utc>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<OutputView>)]
    output: Option<Value>,
    /// The output as Markdown.
    markdown: Option<String>,
    /// Why a run failed: `{code, message}`.
    #[schema(value_type = Option<crate::error::ErrorDetail>)]
    error: Option<Value>,
}

pub(super) fn run_view(r: &RunRow) -> RunView {
    RunView {
        id: r.id.clone(),
        object: "digest.run",
        digest_id: r.digest_id.clone(),
        status: r.status,
        reason: r.reason.clone(),
        scheduled_for: r.scheduled_for,
        as_of: r.as_of,
        started_at: r.started_at,
        finished_at: r.finished_at,
        output: r.output.clone(),
        markdown: r.markdown.clone(),
        error: r.error.clone(),
    }
}

/// A webhook delivery of a run: `delivered`, or `dead` (a dead letter) after its attempts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Delivery)]
pub(crate) struct DeliveryView {
    id: String,
    run_id: String,
    url: String,
    status: DeliveryStatus,
    attempts: i64,
    /// The HTTP status of the last attempt.
    last_status: Option<i64>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub(super) fn delivery_view(d: &DeliveryRow) -> DeliveryView {
    DeliveryView {
        id: d.id.clone(),
        run_id: d.run_id.clone(),
        url: d.url.clone(),
        status: d.status,
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}
