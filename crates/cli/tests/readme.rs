//! The README's quick start, run as written: the `export PATH` line, `cairn serve` with the
//! flags it shows, then every `$ ` command of its `console` blocks, each of whose shown output
//! lines must be printed (in order; `…` stands for an elided middle). The registry's address
//! is the one the README names, moved to a free port.
//!
//! The `warg` block needs the reference CLI (see `warg_interop.rs`); without it that block is
//! skipped loudly, and fails in CI.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// The address the README's commands use.
const README_REGISTRY: &str = "http://127.0.0.1:8090";

/// One `$ ` command and the lines the README shows it printing.
struct Step {
    command: String,
    shown: Vec<String>,
}

/// The quick start section of the README.
fn quick_start() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme
        .find("## Quick start")
        .expect("the README has a quick start");
    let rest = &readme[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_owned()
}

/// The bodies of the fenced blocks of `language` in `text`.
fn blocks(text: &str, language: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, fence) if fence == format!("```{language}") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(lines), line) => lines.push(line.to_owned()),
            (None, _) => {}
        }
    }
    blocks
}

fn steps(block: &[String]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for line in block {
        match line.strip_prefix("$ ") {
            Some(command) => steps.push(Step {
                command: command.to_owned(),
                shown: Vec::new(),
            }),
            None => steps
                .last_mut()
                .expect("a console block starts with a command")
                .shown
                .push(line.to_owned()),
        }
    }
    steps
}

/// Whether `line` is what the README shows as `shown` (`…` elides a middle).
fn matches(shown: &str, line: &str) -> bool {
    match shown.split_once('…') {
        Some((head, tail)) => {
            line.len() >= head.len() + tail.len() && line.starts_with(head) && line.ends_with(tail)
        }
        None => shown == line,
    }
}

/// A shell user in `dir`, with a fresh home, running the README's `export` line first.
struct User {
    dir: PathBuf,
    home: PathBuf,
    export: String,
    path: String,
}

impl User {
    fn run(&self, step: &Step, registry: &str) {
        let command = step.command.replace(README_REGISTRY, registry);
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("{}\n{command}", self.export))
            .current_dir(&self.dir)
            .env("PATH", &self.path)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env_remove("CAIRN_REGISTRY")
            .env_remove("CAIRN_KEY")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "`{command}` failed:\n{stdout}\n{stderr}"
        );
        let mut lines = stdout.lines().chain(stderr.lines());
        for shown in &step.shown {
            assert!(
                lines.any(|line| matches(shown, line)),
                "`{command}` did not print the README's line\n  {shown}\nIt printed:\n{stdout}\n{stderr}"
            );
        }
    }
}

#[test]
fn the_quick_start_works_as_written() {
    let section = quick_start();
    let setup = blocks(&section, "sh");
    assert_eq!(setup.len(), 1, "one `sh` block sets up:\n{section}");
    let setup = &setup[0];
    assert!(
        setup.iter().any(|l| l == "cargo build --release"),
        "{setup:?}"
    );
    let export = setup
        .iter()
        .find(|l| l.starts_with("export PATH="))
        .expect("the setup puts cairn on the PATH")
        .clone();
    let serve = setup
        .iter()
        .find_map(|l| l.strip_prefix("cairn serve"))
        .expect("the setup starts a registry");

    // The folder the README's commands run in: this repository's fixtures, and the binary
    // where `cargo build --release` leaves it.
    let root = temp_dir("readme");
    let dir = root.join("repo");
    std::fs::create_dir_all(dir.join("target")).unwrap();
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests"),
        dir.join("tests"),
    )
    .unwrap();
    let built = Path::new(env!("CARGO_BIN_EXE_cairn")).parent().unwrap();
    std::os::unix::fs::symlink(built, dir.join("target/release")).unwrap();
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();

    let warg = peer("warg", "CAIRN_WARG");
    // The system's PATH, without any cairn: the README's `export` must find it.
    let mut path: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .filter(|p| !p.join("cairn").exists())
        .collect();
    if let Some(warg) = &warg {
        path.insert(0, warg.parent().unwrap().to_owned());
    }
    let user = User {
        dir: dir.clone(),
        home,
        export,
        path: std::env::join_paths(path).unwrap().into_string().unwrap(),
    };

    let serve_flags: Vec<&str> = serve.split_whitespace().collect();
    let server = TestServer::start(&root.join("data"), &serve_flags);

    let consoles = blocks(&section, "console");
    assert_eq!(
        consoles.len(),
        2,
        "a cairn and a warg console block:\n{section}"
    );
    let mut ran = 0;
    for block in &consoles {
        let steps = steps(block);
        if steps[0].command.starts_with("warg ") && warg.is_none() {
            continue;
        }
        for step in &steps {
            user.run(step, &server.url);
            ran += 1;
        }
    }
    assert!(ran >= 5, "ran {ran} commands");
    // What was fetched is what was published.
    let published = fixture("b01-fac.component.wasm");
    assert_eq!(std::fs::read(dir.join("hello.wasm")).unwrap(), published);
    if warg.is_some() {
        assert_eq!(std::fs::read(dir.join("hola.wasm")).unwrap(), published);
    }
    server.stop();
}
