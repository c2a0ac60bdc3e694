//! `tidings keys create|list|revoke`: API keys, stored hashed in `<data dir>/keys.json`.

use anyhow::bail;
use clap::Subcommand;
use tidings::app;
use tidings::config::Settings;
use tidings_api::auth;

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key and print it (only once).
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: read, ingest, admin.
        #[arg(long, default_value = "read")]
        scopes: String,
        /// Requests per minute (0 = unlimited).
        #[arg(long, default_value_t = 120)]
        rate: u32,
    },
    /// List keys (without secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

impl KeysCommand {
    pub(crate) fn run(self, settings: &Settings) -> anyhow::Result<()> {
        let path = app::keys_path(settings);
        match self {
            KeysCommand::Create { name, scopes, rate } => {
                let scopes = scopes
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(auth::Scope::parse)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(anyhow::Error::msg)?;
                let (key, record) =
                    auth::create_key(&path, &name, scopes, rate).map_err(anyhow::Error::msg)?;
                println!("{key}");
                eprintln!(
                "created key {} ({}) with scopes [{}], {} requests/minute; stored hashed in {}. \
                 This is the only time the key is shown.",
                record.id,
                record.name,
                record
                    .scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                record.rate_per_minute,
                path.display()
            );
            }
            KeysCommand::List => {
                let keys = auth::list_keys(&path).map_err(anyhow::Error::msg)?;
                if keys.is_empty() {
                    println!(
                        "no keys in {} (the API is open on loopback only)",
                        path.display()
                    );
                }
                for k in keys {
                    println!(
                        "{}  {:<20} [{}] {}/min created {}{}",
                        k.id,
                        k.name,
                        k.scopes
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        k.rate_per_minute,
                        k.created_at.format("%Y-%m-%d %H:%M"),
                        if k.revoked { "  REVOKED" } else { "" }
                    );
                }
            }
            KeysCommand::Revoke { id } => {
                if !auth::revoke_key(&path, &id).map_err(anyhow::Error::msg)? {
                    bail!("no key with id {id} in {}", path.display());
                }
                println!("revoked {id}");
            }
        }
        Ok(())
    }
}
