//! The client commands against `cairn serve`: config, key, publish (init, release, several
//! entries in one record, yank, grant, revoke), fetch with semver requirements skipping yanked
//! versions, info, log, update, each with `--json` where scripts need it.

mod support;

use std::process::Command;

use support::*;

#[test]
fn publish_fetch_yank_grant_and_revoke_from_the_command_line() {
    let root = temp_dir("client-cli");
    let server = TestServer::start(&root.join("registry"), &["--namespace", "example"]);
    let alice = CliUser::new(&root, "alice");
    let bob = CliUser::new(&root, "bob");
    for user in [&alice, &bob] {
        user.ok(&["config", "--registry", &server.url]);
    }
    let alice_key = alice.json(&["key", "new", "--json"]);
    let bob_key = bob.json(&["key", "new", "--json"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(alice.config().join("keys/default.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        alice.json(&["key", "info", "--json"])["keyId"],
        alice_key["keyId"]
    );

    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let file = |name: &str| fixtures.join(name).display().to_string();
    alice.ok(&["publish", "init", "example:calc"]);
    let published = alice.json(&[
        "publish",
        "release",
        "example:calc",
        "--version",
        "1.0.0",
        &file("b03-rs-calc.wac.component.wasm"),
        "--json",
    ]);
    assert!(published["bytesUploaded"].as_u64().unwrap() > 180_000);
    alice.ok(&[
        "publish",
        "record",
        "example:calc",
        "--release",
        &format!("1.1.0={}", file("b01-fac.component.wasm")),
        "--release",
        &format!("2.0.0={}", file("r03-wabt-fac.core.wasm")),
    ]);

    // Bob fetches: the highest 1.x, byte for byte, with the bytes it moved reported.
    let out = root.join("calc.wasm");
    let fetched = bob.json(&[
        "fetch",
        "example:calc@1",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(fetched["version"], "1.1.0");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        fixture("b01-fac.component.wasm")
    );
    assert!(fetched["bytesDownloaded"].as_u64().unwrap() > 0);
    // Again: everything comes from the fragment cache.
    let again = bob.json(&[
        "fetch",
        "example:calc@1",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(again["blobsDownloaded"], 0);

    // A yanked version is skipped (its file replaces the other only with `--force`).
    alice.ok(&["publish", "yank", "example:calc", "--version", "1.1.0"]);
    let fetched = bob.json(&[
        "fetch",
        "example:calc@1",
        "-o",
        out.to_str().unwrap(),
        "--force",
        "--json",
    ]);
    assert_eq!(fetched["version"], "1.0.0");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        fixture("b03-rs-calc.wac.component.wasm")
    );

    // Grant Bob release; he releases; revoke; his next release is refused.
    alice.ok(&[
        "publish",
        "grant",
        "example:calc",
        bob_key["publicKey"].as_str().unwrap(),
        "--permission",
        "release",
    ]);
    bob.ok(&[
        "publish",
        "release",
        "example:calc",
        "--version",
        "3.0.0",
        &file("r04-extism-runtime.core.wasm"),
    ]);
    alice.ok(&[
        "publish",
        "revoke",
        "example:calc",
        bob_key["keyId"].as_str().unwrap(),
        "--permission",
        "release",
    ]);
    let (ok, _, stderr) = bob.run(&[
        "publish",
        "release",
        "example:calc",
        "--version",
        "3.1.0",
        &file("r04-extism-runtime.core.wasm"),
    ]);
    assert!(!ok && stderr.contains("release"), "{stderr}");

    let update = bob.json(&["update", "--json"]);
    assert!(update["logLength"].as_u64().unwrap() >= 8);
    let info = bob.json(&["info", "example:calc", "--json"]);
    let versions: Vec<(String, bool)> = info[0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().to_owned(),
                v["yanked"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        vec![
            ("1.0.0".into(), false),
            ("1.1.0".into(), true),
            ("2.0.0".into(), false),
            ("3.0.0".into(), false)
        ]
    );
    let log = bob.json(&["log", "example:calc", "--json"]);
    // Each entry is fields, named by its kind.
    let entries: Vec<serde_json::Value> = log
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["entries"].as_array().unwrap().clone())
        .collect();
    assert_eq!(entries[0]["kind"], "init", "{log}");
    assert_eq!(entries[0]["hashAlgorithm"], "sha256");
    assert!(entries[0]["publicKey"]
        .as_str()
        .unwrap()
        .starts_with("ecdsa-p256:"));
    assert!(entries
        .iter()
        .any(|e| e["kind"] == "yank" && e["version"] == "1.1.0"));
    assert!(entries.iter().any(|e| e["kind"] == "release"
        && e["version"] == "2.0.0"
        && e["content"].as_str().unwrap().starts_with("sha256:")));
    assert!(entries.iter().any(|e| e["kind"] == "revoke"
        && e["permissions"] == serde_json::json!(["release"])
        && e["keyId"].as_str().unwrap().starts_with("sha256:")));
    assert!(log[0]["time"].as_str().unwrap().ends_with('Z'));

    // A key from the environment, without a file.
    let (ok, stdout, _) = {
        let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["key", "info", "--json"])
            .env("CAIRN_CONFIG_DIR", root.join("nobody"))
            .env(
                "CAIRN_KEY",
                "ecdsa-p256:I+UlDo0HxyBBFeelhPPWmD+LnklOpqZDkrFP5VduASk=",
            )
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            (),
        )
    };
    assert!(
        ok && stdout
            .contains("sha256:d6d9b4cd077a829c0275233bf3843c8294e250dfcc82b8ea15745e92982a820d"),
        "{stdout}"
    );
}

#[test]
fn update_refuses_a_checkpoint_older_than_the_maximum_age() {
    let root = temp_dir("client-cli-age");
    let server = TestServer::start(&root.join("registry"), &["--namespace", "example"]);
    let carol = CliUser::new(&root, "carol");
    carol.ok(&["config", "--registry", &server.url]);
    // Nothing is published, so the registry's checkpoint from its start ages.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (ok, stdout, stderr) = carol.run(&["update", "--max-checkpoint-age", "1s"]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("old, more than the 1 s allowed"),
        "{stderr}"
    );
    let summary = carol.json(&["update", "--max-checkpoint-age", "1h", "--json"]);
    assert_eq!(summary["logLength"], 1, "{summary}");
}
