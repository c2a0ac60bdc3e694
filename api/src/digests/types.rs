//! The digest API's request bodies, their validation into the agent's `DigestSpec`, and their
//! conversion to and from the stored record (`store::records::DigestRecord`).

use super::scheduler::{Missed, Schedule};
use crate::answer::check_persona;
use crate::invalid;
use crate::store::records::{DigestRecord, DigestScopeRecord, ScheduleRecord, WebhookRecord};
use crate::time::parse_duration;
use crate::{ApiError, AppState, ErrorCode};
use serde::{Deserialize, Serialize};
use tidings_agent::digest::DigestSpec;

const MAX_STORIES: usize = 20;

/// What a digest covers: posts matching the query, or by these handles, with these hashtags,
/// from these sources, in these languages.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = DigestScope)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScopeBody {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) query: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) handles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) hashtags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) langs: Vec<String>,
}

/// A digest definition as the API takes and shows it.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DigestBody {
    pub(super) name: String,
    #[serde(default)]
    pub(super) scope: ScopeBody,
    /// The window before each run's `as_of` ("24h", "7d").
    #[serde(default = "default_window")]
    pub(super) window: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) persona: Option<String>,
    /// 1..20 stories.
    #[serde(default = "default_max_stories")]
    #[schema(minimum = 1, maximum = 20)]
    pub(super) max_stories: usize,
    /// When it runs by itself; absent: only when asked (`POST /v1/digests/{id}/run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) schedule: Option<ScheduleBody>,
    /// Where each run is POSTed, signed with the target's secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 5)]
    pub(super) webhooks: Vec<WebhookBody>,
}

/// A webhook target: its URL and the secret its signatures use (never shown back: a digest
/// read back shows `secret_set: true` instead).
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = Webhook)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookBody {
    pub(super) url: String,
    /// At least 16 characters.
    #[schema(write_only, min_length = 16)]
    pub(super) secret: String,
}

const MAX_WEBHOOKS: usize = 5;

/// `{"cron": "0 8 * * *", "timezone": "Europe/Berlin"}` or `{"every": "6h"}`, with
/// `missed`: `run_once` (default: the latest slot missed while the server was down runs once
/// at start) or `skip`.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Schedule)]
pub(crate) struct ScheduleBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) every: Option<String>,
    /// `run_once` (default) or `skip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) missed: Option<String>,
}

impl ScheduleBody {
    pub(super) fn parse(&self) -> Result<(Schedule, Missed), ApiError> {
        let every = self
            .every
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|e| invalid(format!("schedule.every: {e}")))?;
        let schedule = Schedule::parse(self.cron.as_deref(), self.timezone.as_deref(), every)
            .map_err(|e| invalid(format!("schedule: {e}")))?;
        let missed = match self.missed.as_deref() {
            None | Some("run_once") => Missed::RunOnce,
            Some("skip") => Missed::Skip,
            Some(other) => {
                return Err(invalid(format!(
                    "schedule.missed `{other}` is not one of run_once, skip"
                )))
            }
        };
        Ok((schedule, missed))
    }
}

fn default_window() -> String {
    "24h".into()
}

fn default_max_stories() -> usize {
    5
}

impl DigestBody {
    pub(super) fn validate(&self, state: &AppState) -> Result<DigestSpec, ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(invalid("`name` must be 1 to 200 characters"));
        }
        let window = parse_duration(&self.window).map_err(|e| invalid(format!("window: {e}")))?;
        if window.as_secs() < 60 || window.as_secs() > 31 * 86_400 {
            return Err(invalid("window must be between 1m and 31d"));
        }
        if !(1..=MAX_STORIES).contains(&self.max_stories) {
            return Err(invalid(format!(
                "max_stories must be between 1 and {MAX_STORIES}"
            )));
        }
        if let (Some(p), Some(agent)) = (&self.persona, &state.agent) {
            check_persona(agent, p)?;
        }
        if let Some(s) = &self.schedule {
            s.parse()?;
        }
        if self.webhooks.len() > MAX_WEBHOOKS {
            return Err(invalid(format!(
                "at most {MAX_WEBHOOKS} webhooks per digest"
            )));
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            let url = reqwest::Url::parse(&w.url)
                .map_err(|e| invalid(format!("webhooks[{i}].url: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid(format!(
                    "webhooks[{i}].url must be an http(s) URL with a host"
                )));
            }
            // An address written in the URL is checked now; names are checked when resolved.
            if let Some(ip) = url
                .host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|h| h.parse::<std::net::IpAddr>().ok())
            {
                if let Err(e) = super::webhook::check_ip(ip, &state.config.webhooks.allow) {
                    return Err(ApiError::bad_request(
                        ErrorCode::WebhookRefused,
                        format!("webhooks[{i}]: {e}"),
                    ));
                }
            }
            if !(16..=256).contains(&w.secret.chars().count()) {
                return Err(invalid(format!(
                    "webhooks[{i}].secret must be 16 to 256 characters"
                )));
            }
        }
        Ok(DigestSpec {
            name: name.to_string(),
            query: self.scope.query.clone(),
            handles: self
                .scope
                .handles
                .iter()
                .map(|h| h.trim_start_matches('@').to_lowercase())
                .collect(),
            hashtags: self.scope.hashtags.clone(),
            sources: self.scope.sources.clone(),
            langs: self.scope.langs.clone(),
            window,
            persona: self.persona.clone(),
            max_stories: self.max_stories,
            ..DigestSpec::default()
        })
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RunRequest)]
pub(crate) struct RunBody {
    /// End of the window (RFC 3339 or Unix seconds); default now. Past times replay history.
    pub(super) as_of: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// 1..200 runs (default 20).
    pub(super) limit: Option<i64>,
}

impl From<&DigestBody> for DigestRecord {
    fn from(b: &DigestBody) -> DigestRecord {
        let s = &b.scope;
        DigestRecord {
            name: b.name.clone(),
            scope: DigestScopeRecord {
                query: s.query.clone(),
                handles: s.handles.clone(),
                hashtags: s.hashtags.clone(),
                sources: s.sources.clone(),
                langs: s.langs.clone(),
            },
            window: b.window.clone(),
            persona: b.persona.clone(),
            max_stories: b.max_stories,
            schedule: b.schedule.as_ref().map(|s| ScheduleRecord {
                cron: s.cron.clone(),
                timezone: s.timezone.clone(),
                every: s.every.clone(),
                missed: s.missed.clone(),
            }),
            webhooks: b
                .webhooks
                .iter()
                .map(|w| WebhookRecord {
                    url: w.url.clone(),
                    secret: w.secret.clone(),
                })
                .collect(),
        }
    }
}

impl From<DigestRecord> for DigestBody {
    fn from(r: DigestRecord) -> DigestBody {
        let s = r.scope;
        DigestBody {
            name: r.name,
            scope: ScopeBody {
                query: s.query,
                handles: s.handles,
                hashtags: s.hashtags,
                sources: s.sources,
                langs: s.langs,
            },
            window: r.window,
            persona: r.persona,
            max_stories: r.max_stories,
            schedule: r.schedule.map(|s| ScheduleBody {
                cron: s.cron,
                timezone: s.timezone,
                every: s.every,
                missed: s.missed,
            }),
            webhooks: r
                .webhooks
                .into_iter()
                .map(|w| WebhookBody {
                    url: w.url,
                    secret: w.secret,
                })
                .collect(),
        }
    }
}
