//! Every real binary of the corpus splits, joins back byte for byte, and keeps the tree
//! digest recorded in `golden/corpus.tsv`.
//!
//! The small files are copied into `tests/fixtures/` at the repository root and always run.
//! The whole corpus is read from `../shared/corpus` when it exists (CI always has it); the
//! test says so when it skips it. `BLESS=1` rewrites the golden file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_split::{join, split, BlobId, BlobKind};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/corpus.tsv")
}

/// One line of the golden file: what splitting a file must give.
fn outcome(bytes: &[u8]) -> String {
    match split(bytes) {
        Ok(split) => {
            let modules = split
                .blobs()
                .iter()
                .filter(|b| b.kind == BlobKind::Module)
                .count();
            let skeletons = split.blobs().len() - modules;
            format!(
                "{}\t{}\t{}\t{} skeletons, {} modules",
                bytes.len(),
                BlobId::of(bytes),
                split.tree_digest(),
                skeletons,
                modules
            )
        }
        Err(error) => format!("{}\t{}\terror: {error}", bytes.len(), BlobId::of(bytes)),
    }
}

fn wasm_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
        .collect();
    files.sort();
    files
}

fn read_golden() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(golden_path()).unwrap_or_default();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, rest) = line.split_once('\t').expect("golden line has a file name");
            (name.to_owned(), rest.to_owned())
        })
        .collect()
}

fn check_files(files: &[PathBuf]) {
    let golden = read_golden();
    let bless = std::env::var_os("BLESS").is_some();
    let mut blessed = golden.clone();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let got = outcome(&bytes);
        if let Ok(split) = split(&bytes) {
            let mut joined = Vec::with_capacity(bytes.len());
            let mut source = split.clone();
            join(split.manifest(), &mut source, &mut joined)
                .unwrap_or_else(|e| panic!("{name}: join failed: {e}"));
            assert!(joined == bytes, "{name}: join(split(x)) differs from x");
            // Splitting is a pure function of the bytes.
            assert_eq!(
                cairn_split::split(&bytes).unwrap().manifest(),
                split.manifest(),
                "{name}: a second split differs"
            );
        }
        if bless {
            blessed.insert(name, got);
        } else {
            let want = golden.get(&name).unwrap_or_else(|| {
                panic!("{name} has no line in golden/corpus.tsv; run with BLESS=1")
            });
            assert_eq!(&got, want, "{name}: split outcome changed");
        }
    }
    if bless {
        let mut text = String::from(
            "# file\tsize\tsha256\ttree digest (or error)\tblobs\n# Regenerate with BLESS=1 cargo test -p cairn-split --test corpus\n",
        );
        for (name, line) in &blessed {
            text.push_str(&format!("{name}\t{line}\n"));
        }
        std::fs::write(golden_path(), text).unwrap();
    }
}

#[test]
fn fixture_files_round_trip_and_keep_their_tree_digests() {
    let files = wasm_files(&repo_root().join("tests/fixtures"));
    assert!(files.len() >= 8, "the fixtures are missing");
    check_files(&files);
}

#[test]
fn whole_corpus_round_trips_and_keeps_its_tree_digests() {
    let corpus = repo_root().join("../shared/corpus");
    if !corpus.is_dir() {
        eprintln!(
            "SKIPPED: {} does not exist; only the fixtures were checked",
            corpus.display()
        );
        return;
    }
    let files = wasm_files(&corpus);
    check_files(&files);
    // Every corpus file has a golden line, and the golden file names no file that is gone
    // (from the corpus or from the fixtures, some of which are built here).
    let fixtures = wasm_files(&repo_root().join("tests/fixtures"));
    let names: Vec<String> = files
        .iter()
        .chain(&fixtures)
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in read_golden().keys() {
        assert!(
            names.contains(name),
            "golden/corpus.tsv names {name}, which neither the corpus nor the fixtures hold"
        );
    }
}

#[test]
fn the_bad_version_file_is_refused_with_a_typed_error() {
    let bytes =
        std::fs::read(repo_root().join("tests/fixtures/r02-wasm-compose-a.bad-version.wasm"))
            .unwrap();
    assert_eq!(
        split(&bytes).unwrap_err(),
        cairn_split::SplitError::UnsupportedVersion {
            offset: 4,
            version: [0x0a, 0x00, 0x01, 0x01]
        }
    );
}

/// The two componentize-py components share the CPython runtime and libc modules: stored
/// split, those take space once.
#[test]
fn components_from_the_same_toolchain_share_their_runtime_fragments() {
    let corpus = repo_root().join("../shared/corpus");
    if !corpus.is_dir() {
        eprintln!("SKIPPED: {} does not exist", corpus.display());
        return;
    }
    let a = std::fs::read(corpus.join("b07-py-hello.componentize-py.component.wasm")).unwrap();
    let b = std::fs::read(corpus.join("b10-py-spin-http.componentize-py.component.wasm")).unwrap();
    let (a, b) = (split(&a).unwrap(), split(&b).unwrap());
    let shared: u64 = a
        .blobs()
        .iter()
        .filter(|blob| blob.kind == BlobKind::Module && b.blob(&blob.digest).is_some())
        .map(|blob| blob.bytes.len() as u64)
        .sum();
    // The CPython runtime module alone is over 6 MB.
    assert!(
        shared > 6_000_000,
        "only {shared} bytes of modules are shared"
    );

    // A core module embedded in a component has the same fragment as the module file itself.
    let graphviz_core = std::fs::read(corpus.join("r09-graphviz.wasip1.core.wasm")).unwrap();
    let graphviz_component = std::fs::read(corpus.join("b02-graphviz.component.wasm")).unwrap();
    let component = split(&graphviz_component).unwrap();
    assert!(component.blob(&BlobId::of(&graphviz_core)).is_some());
}
