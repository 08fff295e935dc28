//! Recovering trust: a registry whose whole history changed (here: another registry started
//! at the same address) is refused with one error that names `cairn reset`; `cairn reset`
//! forgets the registry's state (asking first, or with `--yes`); `publish init` asks the
//! registry, not the local state, whether the package exists; state is kept per origin, and a
//! folder named the earlier way (without the scheme) is taken over.

mod support;

use support::*;

fn publish_calc(user: &CliUser, version: &str) {
    let file = user.home.join("calc.wasm");
    std::fs::write(&file, fixture("b01-fac.component.wasm")).unwrap();
    user.ok(&[
        "publish",
        "release",
        "example:calc",
        "--version",
        version,
        file.to_str().unwrap(),
    ]);
}

#[test]
fn a_registry_with_another_history_is_named_once_and_reset_recovers() {
    let root = temp_dir("trust-reset");
    let first = TestServer::start(&root.join("first"), &["--namespace", "example"]);
    let url = first.url.clone();
    let port = url.rsplit(':').next().unwrap().to_owned();
    let alice = CliUser::new(&root, "alice");
    alice.ok(&["config", "--registry", &url]);
    alice.ok(&["key", "new"]);
    alice.ok(&["publish", "init", "example:calc"]);
    publish_calc(&alice, "1.0.0");
    // Another user cannot init it again: the registry says it exists.
    let bob = CliUser::new(&root, "bob");
    bob.ok(&["config", "--registry", &url]);
    bob.ok(&["key", "new"]);
    let error = bob.fails(&["publish", "init", "example:calc"]);
    assert!(error.contains("already initialised"), "{error}");
    first.stop();

    // Another registry at the same address: another operator, another history.
    let listen = format!("127.0.0.1:{port}");
    let second = TestServer::start(
        &root.join("second"),
        &["--namespace", "example", "--listen", &listen],
    );
    assert_eq!(second.url, url);
    let error = alice.fails(&["update"]);
    eprintln!("cairn update said:\n{error}");
    assert_eq!(error.matches("different history").count(), 1, "{error}");
    assert_eq!(
        error
            .matches(&format!("cairn reset --registry {url}"))
            .count(),
        1,
        "{error}"
    );
    // Nothing was trusted from it, and a fetch is refused the same way.
    let error = alice.fails(&["fetch", "example:calc", "-o", "-"]);
    assert!(error.contains("different history"), "{error}");

    // `reset` asks first; without a terminal it needs `--yes`, and forgets nothing.
    let error = alice.fails(&["reset"]);
    assert!(error.contains("pass `--yes`"), "{error}");
    assert!(alice.fails(&["update"]).contains("different history"));
    let out = alice.ok(&["reset", "--yes"]);
    assert!(
        out.contains(&format!("forgot what you trusted about {url}")),
        "{out}"
    );
    // Trusting the new registry from scratch: the package does not exist there, whatever the
    // old state said, so `init` goes through.
    alice.ok(&["update"]);
    alice.ok(&["publish", "init", "example:calc"]);
    publish_calc(&alice, "2.0.0");
    let info = alice.ok(&["info", "example:calc", "--offline"]);
    assert!(info.contains("2.0.0") && !info.contains("1.0.0"), "{info}");
    // Nothing left to forget twice.
    assert!(alice.ok(&["reset", "--yes"]).contains("forgot"));
    assert!(alice.ok(&["reset", "--yes"]).contains("nothing to forget"));
}

#[test]
fn state_is_kept_per_origin_and_an_earlier_folder_is_taken_over() {
    let root = temp_dir("trust-origin");
    let server = TestServer::start(&root.join("registry"), &["--namespace", "example"]);
    let alice = CliUser::new(&root, "alice");
    alice.ok(&["config", "--registry", &server.url]);
    alice.ok(&["key", "new"]);
    alice.ok(&["publish", "init", "example:calc"]);
    let registries = alice.data().join("registries");
    let port = server.url.rsplit(':').next().unwrap();
    let current = registries.join(format!("http_127.0.0.1_{port}"));
    assert!(current.join("trust.json").exists());
    // Named as earlier versions named it (no scheme): renamed on the next use.
    let legacy = registries.join(format!("127.0.0.1_{port}"));
    std::fs::rename(&current, &legacy).unwrap();
    let info = alice.ok(&["info", "example:calc", "--offline"]);
    assert!(info.contains("example:calc"), "{info}");
    assert!(current.join("trust.json").exists() && !legacy.exists());
    // `https://` of the same host and port is another registry with its own state.
    let https = server.url.replace("http://", "https://");
    let (ok, _, error) = alice.run(&["info", "--registry", &https, "--offline"]);
    assert!(ok, "{error}");
    assert!(registries.join(format!("https_127.0.0.1_{port}")).exists());
    assert!(current.join("trust.json").exists());
    // A bare host is HTTPS; what is not a registry URL is refused with a reason.
    alice.ok(&["config", "--registry", "registry.example.com"]);
    let shown = alice.ok(&["config", "--json"]);
    assert!(
        shown.contains("\"https://registry.example.com\""),
        "{shown}"
    );
    let error = alice.fails(&["config", "--registry", "ftp://example.com"]);
    assert!(error.contains("http:// or https://"), "{error}");
}
