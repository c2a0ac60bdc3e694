//! `ARCHITECTURE.md` stays true (in the manner of rust-analyzer's tidy tests): every workspace
//! crate has a row in its code map, every source file is named in its crate's rows, and every
//! source file opens with a `//!` header that says what it is.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tools/ sits in the repository root")
        .to_path_buf()
}

/// The workspace crates as (folder, its rows' key in the code map): `src/` is the root crate.
fn crates(root: &Path) -> Vec<(PathBuf, String)> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("read Cargo.toml");
    let members = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members line in the workspace manifest");
    let mut out = vec![(root.join("src"), "src/".to_string())];
    for name in members.split('"').skip(1).step_by(2) {
        out.push((root.join(name).join("src"), format!("{name}/")));
    }
    out
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code map's rows (table lines) whose first cell names `key` (`index/`, `api/src/…`).
fn rows_for<'a>(map: &'a str, key: &str) -> Vec<&'a str> {
    map.lines()
        .filter(|l| {
            l.strip_prefix("| `")
                .is_some_and(|rest| rest.starts_with(key))
        })
        .collect()
}

/// How a file is named in the code map: `writer.rs`; a folder module by its folder, `vectors/`.
fn map_name(file: &Path) -> String {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    if name == "mod.rs" {
        let folder = file
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        format!("{folder}/")
    } else {
        name
    }
}

#[test]
fn the_code_map_names_every_crate_and_source_file() {
    let root = repo_root();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    let map = doc
        .split("## Code map")
        .nth(1)
        .expect("ARCHITECTURE.md has a '## Code map' section");
    let mut missing = Vec::new();
    for (src, key) in crates(&root) {
        let rows = rows_for(map, &key);
        if rows.is_empty() {
            missing.push(format!("crate {key} has no row"));
            continue;
        }
        let text = rows.join("\n");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let name = map_name(&file);
            // Every crate has a lib.rs; the row says what the crate is.
            if name == "lib.rs" {
                continue;
            }
            if !text.contains(&name) {
                let shown = file.strip_prefix(&root).unwrap_or(&file);
                missing.push(format!(
                    "{} (as `{name}` in the {key} rows)",
                    shown.display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_source_file_says_what_it_is() {
    let root = repo_root();
    let mut missing = Vec::new();
    for (src, _) in crates(&root) {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if !text.trim_start().starts_with("//!") {
                missing.push(
                    file.strip_prefix(&root)
                        .unwrap_or(&file)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "these files open without a `//!` header:\n  {}",
        missing.join("\n  ")
    );
}
