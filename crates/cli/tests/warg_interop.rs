//! The reference `warg` CLI 0.10.0 against `cairn serve`: key new, publish init, releases of
//! corpus components, download (byte-identical), update, info, yank, grant and revoke for a
//! second key, and a release by that key refused after the revoke.
//!
//! The `warg` binary is found through `CAIRN_WARG`, then `$CAIRN_PEERS/bin/warg` (default
//! `~/.cache/cairn-peers`), then `PATH` (`.ci/run` installs it with
//! `cargo install --locked warg-cli --root ~/.cache/cairn-peers`). Without it, this test says
//! so loudly and passes, except in CI (`CI` set), where it fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::*;

/// One `warg` user: their own home, config and flat-file keyring.
struct WargUser {
    warg: PathBuf,
    home: PathBuf,
}

impl WargUser {
    fn new(warg: &Path, root: &Path, name: &str, registry: &str) -> Self {
        let user = WargUser {
            warg: warg.to_owned(),
            home: root.join(name),
        };
        std::fs::create_dir_all(&user.home).unwrap();
        user.ok(&[
            "config",
            "--registry",
            registry,
            "--keyring-backend",
            "flat-file",
        ]);
        user
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.warg);
        command
            .args(args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "warg {args:?} failed:\n{text}");
        text
    }

    /// `warg publish yank` asks for confirmation on a terminal: answer it under `script`.
    fn yank(&self, name: &str, version: &str) -> String {
        let inner = format!(
            "{} publish yank --name {name} --version {version}",
            self.warg.display()
        );
        let output = Command::new("sh")
            .args([
                "-c",
                &format!("yes | timeout 20 script -qec '{inner}' /dev/null"),
            ])
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // `script` may outlive `warg` while `yes` feeds it; what counts is warg's own report.
        assert!(
            text.contains(&format!("yanked version {version}")),
            "warg yank failed:\n{text}"
        );
        text
    }

    fn field(&self, args: &[&str], label: &str) -> String {
        let text = self.ok(args);
        text.lines()
            .find_map(|line| line.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
            .trim()
            .to_owned()
    }
}

#[test]
fn the_reference_warg_cli_works_against_cairn() {
    let Some(warg) = peer("warg", "CAIRN_WARG") else {
        return;
    };
    let root = temp_dir("warg-interop");
    let server = TestServer::start(&root.join("data"), &["--namespace", "example"]);
    let alice = WargUser::new(&warg, &root, "alice", &server.url);
    let bob = WargUser::new(&warg, &root, "bob", &server.url);
    alice.ok(&["key", "new"]);
    let bob_key = bob.field(&["key", "new"], "Public Key:");
    let bob_id = bob.field(&["key", "info"], "Key ID:");

    alice.ok(&["publish", "init", "example:hello"]);
    let mut components: Vec<(String, Vec<u8>)> = vec![
        (
            "b01-fac.component.wasm".into(),
            fixture("b01-fac.component.wasm"),
        ),
        (
            "b03-rs-calc.wac.component.wasm".into(),
            fixture("b03-rs-calc.wac.component.wasm"),
        ),
    ];
    match corpus("b02-graphviz.component.wasm") {
        Some(bytes) => components.push(("b02-graphviz.component.wasm".into(), bytes)),
        None => eprintln!("SKIPPED: ../shared/corpus is missing; releasing the fixtures only"),
    }
    let files = root.join("files");
    std::fs::create_dir_all(&files).unwrap();
    for (i, (name, bytes)) in components.iter().enumerate() {
        let path = files.join(name);
        std::fs::write(&path, bytes).unwrap();
        let version = format!("0.{}.0", i + 1);
        alice.ok(&[
            "publish",
            "release",
            "--name",
            "example:hello",
            "--version",
            &version,
            path.to_str().unwrap(),
        ]);
        let out = root.join(format!("download-{i}"));
        std::fs::create_dir_all(&out).unwrap();
        alice.ok(&[
            "download",
            "example:hello",
            "--version",
            &version,
            "-o",
            &format!("{}/", out.display()),
        ]);
        let downloaded = std::fs::read(out.join("hello.wasm")).unwrap();
        assert!(
            downloaded == *bytes,
            "{name}: the download differs from the release"
        );
    }

    alice.ok(&["update"]);
    let info = alice.ok(&["info", "example:hello"]);
    assert!(info.contains("0.1.0") && info.contains("0.2.0"), "{info}");

    // Yank: the yanked version disappears from `info`.
    alice.yank("example:hello", "0.1.0");
    alice.ok(&["update"]);
    let info = alice.ok(&["info", "example:hello"]);
    assert!(!info.contains("0.1.0 ") && info.contains("0.2.0"), "{info}");

    // Grant Bob release, Bob releases; revoke, Bob's next release is refused.
    alice.ok(&[
        "publish",
        "grant",
        "--name",
        "example:hello",
        &bob_key,
        "--permission",
        "release",
    ]);
    let bob_file = files.join("r03.wasm");
    std::fs::write(&bob_file, fixture("r03-wabt-fac.core.wasm")).unwrap();
    bob.ok(&[
        "publish",
        "release",
        "--name",
        "example:hello",
        "--version",
        "1.0.0",
        bob_file.to_str().unwrap(),
    ]);
    alice.ok(&[
        "publish",
        "revoke",
        "--name",
        "example:hello",
        &bob_id,
        "--permission",
        "release",
    ]);
    let refused = bob.run(&[
        "publish",
        "release",
        "--name",
        "example:hello",
        "--version",
        "1.1.0",
        bob_file.to_str().unwrap(),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        !refused.status.success(),
        "a release after the revoke was accepted:\n{text}"
    );
    assert!(
        text.contains("rejected") && text.contains("release"),
        "{text}"
    );

    alice.ok(&["update"]);
    let info = alice.ok(&["info", "example:hello"]);
    assert!(info.contains("1.0.0") && !info.contains("1.1.0"), "{info}");
    drop(server);
    let (ok, _, stderr) = cairn(&["audit", "--data", root.join("data").to_str().unwrap()]);
    assert!(ok, "{stderr}");
}
