//! API keys with scopes and per-key rate limits.
//!
//! Keys live in `<data dir>/keys.json`, created by `tidings keys create`. Only a SHA-256 of each
//! key is stored; the key itself is printed once. A key looks like `tdk_<id>_<secret>`.
//! Scopes: `read` (search, chat, models, reading posts), `ingest` (pushing and deleting posts),
//! `admin` (everything). With no keys on file the API is open, and the server refuses to bind
//! anywhere but loopback. The file is re-read when it changes, so keys created or revoked while
//! the server runs take effect within a second.

use crate::ApiError;
use crate::ErrorCode;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Ingest,
    Admin,
}

impl Scope {
    pub fn parse(raw: &str) -> Result<Scope, String> {
        match raw.trim().to_lowercase().as_str() {
            "read" => Ok(Scope::Read),
            "ingest" => Ok(Scope::Ingest),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope `{other}`: use read, ingest or admin"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Ingest => "ingest",
            Scope::Admin => "admin",
        }
    }
}

/// A stored key (never the key itself).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Hex SHA-256 of the whole key.
    pub hash: String,
    pub created_at: DateTime<Utc>,
    /// Requests per minute; 0 = unlimited.
    pub rate_per_minute: u32,
    #[serde(default)]
    pub revoked: bool,
}

impl ApiKey {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

#[derive(Default, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<ApiKey>,
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why the key file could not be read or written, or a key not made.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid key file: {detail}")]
    Invalid { path: String, detail: String },
    #[error("no randomness available: {0}")]
    NoRandomness(String),
    #[error("a key needs at least one scope (read, ingest, admin)")]
    NoScope,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError {
    let path = path.display().to_string();
    move |source| KeyFileError::Io {
        action,
        path,
        source,
    }
}

fn random_hex(bytes: usize) -> Result<String, KeyFileError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| KeyFileError::NoRandomness(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn read_file(path: &Path) -> Result<KeyFile, KeyFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| KeyFileError::Invalid {
            path: path.display().to_string(),
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
        Err(e) => Err(io_error("read", path)(e)),
    }
}

fn write_file(path: &Path, file: &KeyFile) -> Result<(), KeyFileError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(file).map_err(|e| KeyFileError::Invalid {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    std::fs::write(&tmp, text).map_err(io_error("write", &tmp))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
    }
    std::fs::rename(&tmp, path).map_err(io_error("replace", path))
}

/// Creates a key; returns it (print it once) and its stored record.
pub fn create_key(
    path: &Path,
    name: &str,
    scopes: Vec<Scope>,
    rate_per_minute: u32,
) -> Result<(String, ApiKey), KeyFileError> {
    if scopes.is_empty() {
        return Err(KeyFileError::NoScope);
    }
    let mut file = read_file(path)?;
    let id = random_hex(4)?;
    let secret = random_hex(20)?;
    let key = format!("tdk_{id}_{secret}");
    let record = ApiKey {
        id,
        name: name.to_string(),
        scopes,
        hash: sha256_hex(&key),
        created_at: Utc::now(),
        rate_per_minute,
        revoked: false,
    };
    file.keys.push(record.clone());
    write_file(path, &file)?;
    Ok((key, record))
}

pub fn list_keys(path: &Path) -> Result<Vec<ApiKey>, KeyFileError> {
    Ok(read_file(path)?.keys)
}

/// Revokes a key by id; `false` when no such key exists.
pub fn revoke_key(path: &Path, id: &str) -> Result<bool, KeyFileError> {
    let mut file = read_file(path)?;
    let mut found = false;
    for k in file.keys.iter_mut().filter(|k| k.id == id) {
        k.revoked = true;
        found = true;
    }
    if found {
        write_file(path, &file)?;
    }
    Ok(found)
}

/// Whether any usable key exists at `path`.
pub fn keys_configured(path: &Path) -> bool {
    read_file(path).is_ok_and(|f| f.keys.iter().any(|k| !k.revoked))
}

struct Loaded {
    keys: Vec<ApiKey>,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// The server's view of the key file, with one rate limiter per key.
pub struct KeyStore {
    path: Option<PathBuf>,
    loaded: Mutex<Loaded>,
    limiters: Mutex<HashMap<String, (u32, Arc<DefaultDirectRateLimiter>)>>,
}

impl KeyStore {
    /// `None`: keys are off (tests, embedded use); the API is open.
    pub fn new(path: Option<PathBuf>) -> KeyStore {
        let store = KeyStore {
            path,
            loaded: Mutex::new(Loaded {
                keys: Vec::new(),
                modified: None,
                checked: Instant::now() - Duration::from_secs(60),
            }),
            limiters: Mutex::new(HashMap::new()),
        };
        store.refresh();
        store
    }

    /// Re-reads the file when it changed (checked at most once a second).
    fn refresh(&self) {
        let Some(path) = &self.path else { return };
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        loaded.checked = Instant::now();
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified == loaded.modified {
            return;
        }
        match read_file(path) {
            Ok(file) => {
                loaded.keys = file.keys;
                loaded.modified = modified;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not reload API keys; keeping the old ones")
            }
        }
    }

    /// Whether requests need a key.
    pub fn enabled(&self) -> bool {
        self.refresh();
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded.keys.iter().any(|k| !k.revoked)
    }

    /// Checks the request's key for `scope` and its rate limit.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Option<ApiKey>, ApiError> {
        if !self.enabled() {
            return Ok(None);
        }
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::MissingApiKey,
                    "send an API key as `Authorization: Bearer tdk_...` (create one with `tidings keys create`)",
                )
            })?;
        let hash = sha256_hex(presented);
        let key = {
            let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            loaded
                .keys
                .iter()
                .find(|k| !k.revoked && k.hash == hash)
                .cloned()
        }
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidApiKey,
                "this API key is unknown or revoked",
            )
        })?;
        if !key.allows(scope) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::InsufficientScope,
                format!(
                    "this key has scopes [{}]; this endpoint needs `{}`",
                    key.scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    scope.as_str()
                ),
            ));
        }
        if let Some(limiter) = self.limiter(&key) {
            if let Err(not_until) = limiter.check() {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    format!(
                        "this key is limited to {} requests a minute; retry in {secs} s",
                        key.rate_per_minute
                    ),
                )
                .with_retry_after(secs));
            }
        }
        Ok(Some(key))
    }

    fn limiter(&self, key: &ApiKey) -> Option<Arc<DefaultDirectRateLimiter>> {
        let rate = NonZeroU32::new(key.rate_per_minute)?;
        let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(key.id.clone()).or_insert_with(|| {
            (
                rate.get(),
                Arc::new(RateLimiter::direct(Quota::per_minute(rate))),
            )
        });
        if entry.0 != rate.get() {
            *entry = (
                rate.get(),
                Arc::new(RateLimiter::direct(Quota::per_minute(rate))),
            );
        }
        Some(entry.1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {key}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn keys_are_hashed_scoped_revocable_and_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let store = KeyStore::new(Some(path.clone()));
        assert!(!store.enabled());
        assert!(store
            .authorize(&HeaderMap::new(), Scope::Admin)
            .unwrap()
            .is_none());

        let (key, record) = create_key(&path, "bot", vec![Scope::Read], 2).unwrap();
        assert!(key.starts_with("tdk_"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&key), "the key itself must not be stored");
        let store = KeyStore::new(Some(path.clone()));
        assert!(store.enabled());
        let e = store.authorize(&HeaderMap::new(), Scope::Read).unwrap_err();
        assert_eq!(e.code, "missing_api_key");
        let e = store
            .authorize(&bearer("tdk_nope_x"), Scope::Read)
            .unwrap_err();
        assert_eq!(e.code, "invalid_api_key");
        let e = store.authorize(&bearer(&key), Scope::Ingest).unwrap_err();
        assert_eq!(e.code, "insufficient_scope");
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        // The ingest refusal above did not use the quota; two reads pass, the third is limited.
        assert!(store.authorize(&bearer(&key), Scope::Read).is_ok());
        assert!(store.authorize(&bearer(&key), Scope::Read).is_ok());
        let e = store.authorize(&bearer(&key), Scope::Read).unwrap_err();
        assert_eq!(e.code, "rate_limited");
        assert!(e.retry_after.is_some_and(|s| s >= 1));

        assert!(revoke_key(&path, &record.id).unwrap());
        let store = KeyStore::new(Some(path.clone()));
        assert!(!store.enabled());
        assert!(!keys_configured(&path));
    }
}
