//! `cairn serve --database postgres://...`: a registry whose database is a real PostgreSQL
//! server (a cluster of the test's own on loopback, stopped by its PID), used by the
//! `cairn` client as it uses one on SQLite: publish, fetch, a crash of the server with
//! `kill -9`, PostgreSQL itself restarted under a running server, and `cairn audit` on
//! the database afterwards. Skipped, with a note, when PostgreSQL is not installed, except
//! in CI.

mod support;

use cairn_test_servers::Cluster;
use support::*;

#[test]
fn a_registry_on_postgresql_publishes_fetches_and_survives_kill_9() {
    let Some(cluster) = Cluster::start("serve") else {
        return;
    };
    let url = cluster.create_database("registry");
    let root = temp_dir("pg-serve");
    let data = root.join("registry");
    // One address for both lives of the server, so that the users' configuration holds.
    let port = free_loopback_port();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "--namespace",
        "example",
        "--database",
        &url,
        "--listen",
        &listen,
    ];
    let server = TestServer::start(&data, &args);
    // Everything the registry records is in PostgreSQL, not in a file of the data directory.
    assert!(!data.join("cairn.db").exists());

    let alice = CliUser::new(&root, "alice");
    let bob = CliUser::new(&root, "bob");
    for user in [&alice, &bob] {
        user.ok(&["config", "--registry", &server.url]);
    }
    alice.ok(&["key", "new"]);
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let file = |name: &str| fixtures.join(name).display().to_string();
    alice.ok(&["publish", "init", "example:greeter"]);
    alice.ok(&[
        "publish",
        "release",
        "example:greeter",
        "--version",
        "1.0.0",
        &file("greeter-1.component.wasm"),
    ]);
    let out = root.join("greeter.wasm");
    bob.ok(&[
        "fetch",
        "example:greeter@1.0.0",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        fixture("greeter-1.component.wasm")
    );

    // The server crashes; restarted on the same database, it serves what it acknowledged
    // and goes on publishing.
    let before = server.wait_for_checkpoint(1);
    server.crash();
    let server = TestServer::start(&data, &args);
    server.wait_for_checkpoint(before.contents.log_length);
    alice.ok(&[
        "publish",
        "release",
        "example:greeter",
        "--version",
        "1.1.0",
        &file("greeter-2.component.wasm"),
    ]);
    bob.ok(&[
        "fetch",
        "example:greeter@1.1.0",
        "-o",
        out.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        fixture("greeter-2.component.wasm")
    );

    // PostgreSQL itself goes down under the running server: publishing fails with an error
    // that says to try again, and works again once the database is back.
    cluster.kill();
    let refused = alice.fails(&[
        "publish",
        "release",
        "example:greeter",
        "--version",
        "1.2.0",
        &file("greeter-1.component.wasm"),
    ]);
    assert!(
        refused.contains("could not store this just now") && refused.contains("send it again"),
        "{refused}"
    );
    cluster.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (ok, stdout, stderr) = alice.run(&[
            "publish",
            "release",
            "example:greeter",
            "--version",
            "1.2.0",
            &file("greeter-1.component.wasm"),
        ]);
        if ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "publishing did not recover:\n{stdout}{stderr}\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    bob.ok(&["update"]);
    let status = server.stop();
    assert!(status.success(), "{status:?}");

    // The whole history replays and every content joins, from the database and the data
    // directory's content store.
    let audited = alice.json(&[
        "audit",
        "--data",
        data.to_str().unwrap(),
        "--database",
        &url,
        "--json",
    ]);
    assert_eq!(audited["contentsChecked"], 2, "{audited}");
    assert!(audited["records"].as_u64().unwrap() >= 5, "{audited}");
}

#[test]
fn a_sqlite_registry_migrates_to_postgresql_with_the_same_history() {
    let Some(cluster) = Cluster::shared() else {
        return;
    };
    let url = cluster.create_database("migrated");
    let root = temp_dir("pg-migrate");
    let data = root.join("registry");
    let port = free_loopback_port();
    let listen = format!("127.0.0.1:{port}");
    let server = TestServer::start(&data, &["--namespace", "example", "--listen", &listen]);
    let alice = CliUser::new(&root, "alice");
    alice.ok(&["config", "--registry", &server.url]);
    alice.ok(&["key", "new"]);
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let file = |name: &str| fixtures.join(name).display().to_string();
    alice.ok(&["publish", "init", "example:greeter"]);
    for (version, name) in [("1.0.0", "greeter-1"), ("1.1.0", "greeter-2")] {
        alice.ok(&[
            "publish",
            "release",
            "example:greeter",
            "--version",
            version,
            &file(&format!("{name}.component.wasm")),
        ]);
    }
    let dir = data.to_str().unwrap();
    alice.ok(&[
        "admin",
        "publisher",
        "add",
        "--data",
        dir,
        "ci",
        "--namespace",
        "example",
    ]);
    assert!(server.stop().success());
    let on_sqlite = alice.json(&["audit", "--data", dir, "--json"]);

    let migrated = alice.json(&["admin", "migrate", "--from", dir, "--to", &url, "--json"]);
    assert_eq!(
        migrated["tables"]["records"], on_sqlite["records"],
        "{migrated}"
    );
    assert_eq!(migrated["tables"]["publishers"], 1, "{migrated}");
    // The copy replays to the same roots, and every content joins.
    let on_postgres = alice.json(&["audit", "--data", dir, "--database", &url, "--json"]);
    for field in [
        "records",
        "checkpoints",
        "logLength",
        "logRoot",
        "mapRoot",
        "contentsChecked",
    ] {
        assert_eq!(
            on_postgres[field], on_sqlite[field],
            "{field}: {on_postgres}"
        );
    }
    // A second copy into the same database is refused, naming what to do.
    let refused = alice.fails(&["admin", "migrate", "--from", dir, "--to", &url]);
    assert!(refused.contains("already holds a registry"), "{refused}");

    // Served from PostgreSQL: the same log, the account, and publishing goes on.
    let server = TestServer::start(
        &data,
        &[
            "--namespace",
            "example",
            "--listen",
            &listen,
            "--database",
            &url,
        ],
    );
    let accounts = alice.ok(&[
        "admin",
        "publisher",
        "list",
        "--data",
        dir,
        "--database",
        &url,
    ]);
    assert!(accounts.contains("ci"), "{accounts}");
    alice.ok(&["update"]);
    alice.ok(&[
        "publish",
        "release",
        "example:greeter",
        "--version",
        "2.0.0",
        &file("greeter-1.component.wasm"),
    ]);
    let bob = CliUser::new(&root, "bob");
    bob.ok(&["config", "--registry", &server.url]);
    let out = root.join("greeter.wasm");
    bob.ok(&[
        "fetch",
        "example:greeter@1.1.0",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        fixture("greeter-2.component.wasm")
    );
    assert!(server.stop().success());
}
