//! `tidings-api`: the HTTP face of Tidings (axum).
//!
//! Layout: [`router`] builds the app from an [`AppState`] over [`api_routes`], where every
//! operation is routed and documented (OpenAPI, `openapi`) from its handler; `routes/` holds the
//! route families without a domain folder (posts, search, chat, live, health);
//! `conversations/` and `digests/` hold theirs; `answer` what the answer routes share; `store/`
//! the app database; `metrics` renders Prometheus text; `error` maps every failure to
//! `{"error": {"code", "message"}}` with a stable code. Response views are typed structs that
//! convert by hand from the index's, agent's and store's types.

mod answer;
pub mod auth;
mod conversations;
mod digests;
mod error;
pub mod lease;
mod metrics;
mod openapi;
pub mod recover;
mod routes;
pub mod store;
mod time;
mod web;

pub use digests::output::digest_json;
pub use digests::service::apply_declared as apply_declared_digests;
pub use digests::{scheduler, webhook};
pub(crate) use error::invalid;
pub use error::{ApiError, ErrorCode};
pub use recover::{recover, recover_abandoned, Recovered};
pub use time::{parse_duration, parse_time};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tidings_agent::Agent;
use tidings_index::{IndexStats, SearchHandle, WriteHandle};
use tidings_ingest::ValidationConfig;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub max_body_bytes: usize,
    pub max_posts_per_request: usize,
    pub max_search_results: usize,
    /// Recency half-life when a search names none.
    pub default_half_life: Option<Duration>,
    pub validation: ValidationConfig,
    /// Webhook delivery of digest runs.
    pub webhooks: webhook::WebhookConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 10 << 20,
            max_posts_per_request: 10_000,
            max_search_results: 100,
            default_half_life: Some(Duration::from_secs(24 * 3600)),
            validation: ValidationConfig::default(),
            webhooks: webhook::WebhookConfig::default(),
        }
    }
}

/// Everything handlers need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub search: SearchHandle,
    pub write: WriteHandle,
    pub stats: Arc<IndexStats>,
    pub config: Arc<ApiConfig>,
    /// The answering agent; `None` when the server runs without a chat model.
    pub agent: Option<Agent>,
    pub keys: Arc<auth::KeyStore>,
    /// The app database (conversations); `None` serves no conversations.
    pub store: Option<store::Store>,
    pub(crate) generating: conversations::Generating,
    /// This process among the replicas sharing the database (leases, `/readyz`).
    pub replica: lease::Replica,
    /// Whether this replica writes the vectors, when replicas share a vector store.
    pub vector_writer: Option<tidings_index::VectorWriterRole>,
    /// Wakes the digest scheduler when digests change.
    pub digests_changed: Arc<tokio::sync::Notify>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    /// The live sources `tidings serve` runs (empty elsewhere).
    pub sources: Arc<Vec<Arc<tidings_ingest::sources::SourceStatus>>>,
    /// Background work started by requests (generations, digest runs, webhook deliveries):
    /// the app closes and waits for it, up to its grace period, when it stops.
    pub tasks: tokio_util::task::TaskTracker,
}

impl AppState {
    pub fn new(
        search: SearchHandle,
        write: WriteHandle,
        stats: Arc<IndexStats>,
        config: ApiConfig,
    ) -> AppState {
        let replica = lease::Replica::default();
        let metrics = Arc::new(metrics::Metrics::new(
            stats.clone(),
            Vec::new(),
            &replica,
            None,
        ));
        AppState {
            search,
            write,
            stats,
            config: Arc::new(config),
            agent: None,
            keys: Arc::new(auth::KeyStore::new(None)),
            store: None,
            generating: Default::default(),
            replica,
            vector_writer: None,
            digests_changed: Arc::new(tokio::sync::Notify::new()),
            metrics,
            sources: Arc::new(Vec::new()),
            tasks: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Tracks background work with `tasks` (the app's tracker, so that stopping waits for it).
    pub fn with_tasks(mut self, tasks: tokio_util::task::TaskTracker) -> AppState {
        self.tasks = tasks;
        self
    }

    /// Serves answers with `agent`.
    pub fn with_agent(mut self, agent: Agent) -> AppState {
        self.agent = Some(agent);
        self
    }

    /// Reports these live sources in `/readyz`, `/metrics` and `/v1/sources`.
    pub fn with_sources(
        mut self,
        sources: Vec<Arc<tidings_ingest::sources::SourceStatus>>,
    ) -> AppState {
        self.sources = Arc::new(sources);
        self.rebuild_metrics();
        self
    }

    /// The metrics registry, over what the state now says (call after changing it).
    fn rebuild_metrics(&mut self) {
        self.metrics = Arc::new(metrics::Metrics::new(
            self.stats.clone(),
            self.sources.to_vec(),
            &self.replica,
            self.vector_writer.clone(),
        ));
    }

    /// Names this replica and sets how long its leases last.
    pub fn with_replica(mut self, replica: lease::Replica) -> AppState {
        self.replica = replica;
        self.rebuild_metrics();
        self
    }

    /// Reports this replica's vector writer role in `/readyz` and `/v1/sources`.
    pub fn with_vector_writer(mut self, role: tidings_index::VectorWriterRole) -> AppState {
        self.vector_writer = Some(role);
        self.rebuild_metrics();
        self
    }

    /// Keeps conversations in `store`.
    pub fn with_store(mut self, store: store::Store) -> AppState {
        self.store = Some(store);
        self
    }

    /// Requires API keys from the key file (when it holds any).
    pub fn with_keys(mut self, keys: auth::KeyStore) -> AppState {
        self.keys = Arc::new(keys);
        self
    }
}

/// Every operation of the API, routed and documented from the same handlers: each handler's
/// `#[utoipa::path]` gives its method and path to both the router and the OpenAPI document.
pub(crate) fn api_routes() -> OpenApiRouter<AppState> {
    use conversations::routes as conversation;
    use digests::routes as digest;
    use routes::{chat, health, live, posts, search};
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::render))
        .routes(routes!(health::sources))
        .routes(routes!(openapi::spec))
        .routes(routes!(chat::completions))
        .routes(routes!(chat::models))
        .routes(routes!(search::search_get, search::search_post))
        .routes(routes!(conversation::list, conversation::create))
        .routes(routes!(
            conversation::get,
            conversation::update,
            conversation::remove
        ))
        .routes(routes!(conversation::ask))
        .routes(routes!(conversation::regenerate))
        .routes(routes!(conversation::edit))
        .routes(routes!(conversation::activate))
        .routes(routes!(digest::list, digest::create))
        .routes(routes!(digest::get, digest::replace, digest::remove))
        .routes(routes!(digest::run_now))
        .routes(routes!(digest::runs))
        .routes(routes!(digest::run))
        .routes(routes!(digest::feed))
        .routes(routes!(digest::deliveries))
        .routes(routes!(live::stream))
        .routes(routes!(live::trending))
        .routes(routes!(posts::push))
        .routes(routes!(posts::fetch, posts::remove))
        .routes(routes!(web::index))
}

/// The whole HTTP app.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let (api, _) = api_routes().split_for_parts();
    // The page's static files are not API.
    api.route("/assets/{file}", get(web::asset))
        .fallback(routes::health::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(limit))
        // Last line of defence: a handler that panics answers 500 `internal` (JSON, like every
        // other error) instead of dropping the connection; the panic is logged.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(state)
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    use axum::response::IntoResponse;
    let message = tidings_agent::panic_message(panic.as_ref());
    tracing::error!(panic = %message, "a request handler panicked");
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        "internal error; see the server log",
    )
    .into_response()
}

/// Counts requests by route, method and status.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    state
        .metrics
        .observe_request(route, method, response.status().as_u16());
    response
}

/// The scope a route needs; `None` for the open ones (health, metrics, the API description).
fn scope_for(route: &str, method: &axum::http::Method) -> Option<auth::Scope> {
    use axum::http::Method;
    match route {
        "/healthz" | "/readyz" | "/metrics" | "/openapi.json" | "/" | "/assets/{file}" => None,
        "/v1/posts" if method == Method::POST => Some(auth::Scope::Ingest),
        "/v1/posts/{id}" if method == Method::DELETE => Some(auth::Scope::Ingest),
        // Digests run the model on a schedule others set: changing them takes `admin`.
        "/v1/digests" | "/v1/digests/{id}" | "/v1/digests/{id}/run" if method != Method::GET => {
            Some(auth::Scope::Admin)
        }
        _ => Some(auth::Scope::Read),
    }
}

/// Checks the API key (when keys are configured) and its rate limit.
async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    if let Some(scope) = scope_for(&route, request.method()) {
        if let Err(e) = state.keys.authorize(request.headers(), scope) {
            return axum::response::IntoResponse::into_response(e);
        }
    }
    next.run(request).await
}

/// Runs the digest scheduler until `shutdown` (see [`scheduler`]).
pub async fn run_scheduler(state: AppState, shutdown: tokio_util::sync::CancellationToken) {
    let changed = state.digests_changed.clone();
    let runner = Arc::new(digests::schedule::ScheduledDigests(state));
    scheduler::run(runner, scheduler::Clock::System, changed, shutdown).await;
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then drains open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
