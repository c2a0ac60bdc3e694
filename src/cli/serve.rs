//! `tidings serve`: the HTTP API on a loopback address, optionally replaying a feed into the
//! index, until Ctrl-C or SIGTERM (then sources stop, requests drain and the index commits).

use clap::Args;
use std::path::PathBuf;
use tidings::app::{App, ReplayOptions};
use tidings::config::Settings;
use tidings_ingest::replay::Pace;

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to bind, e.g. 127.0.0.1:8080.
    #[arg(long)]
    bind: Option<std::net::SocketAddr>,
    /// JSONL feed to replay in timestamp order while serving.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Replay speed: original gaps divided by this factor.
    #[arg(long, default_value_t = 60.0, conflicts_with = "rate")]
    speed: f64,
    /// Replay at a fixed number of posts per second instead.
    #[arg(long)]
    rate: Option<f64>,
    /// Load the whole feed as fast as possible.
    #[arg(long, conflicts_with_all = ["rate"])]
    fast: bool,
    /// Shift replayed timestamps so the feed starts now.
    #[arg(long)]
    shift_to_now: bool,
    /// Do not start the live sources (`[sources]`) this time.
    #[arg(long)]
    no_sources: bool,
}

impl ServeArgs {
    pub(crate) async fn run(self, mut settings: Settings) -> anyhow::Result<()> {
        if let Some(bind) = self.bind {
            settings.server.bind = bind;
        }
        let replay = self.replay.map(|path| ReplayOptions {
            path,
            pace: if self.fast {
                Pace::Unlimited
            } else {
                self.rate.map_or(Pace::Speed(self.speed), Pace::Rate)
            },
            shift_to_now: self.shift_to_now,
        });
        let app = App::build_with_sources(&settings, replay, !self.no_sources).await?;
        println!("Tidings is serving on http://{} (Ctrl-C to stop)", app.addr);
        let token = app.shutdown_token();
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("shutting down: stopping sources, draining requests, committing"),
            _ = token.cancelled() => {}
        }
        app.stop().await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
