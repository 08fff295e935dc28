//! What `cairn serve` logs for its operator: the hosted namespaces at start; one line per
//! accepted, published and rejected record (package, entries, key, index or reason); one line
//! per failed request (method, path, status, time); no colour codes when standard error is
//! not a terminal; and `--log-format json`, one JSON object a line.

mod support;

use cairn_protocol::api::RecordState;
use cairn_protocol::PackageEntry;
use support::*;

/// The log's lines that contain every one of `parts`.
fn lines_with<'a>(log: &'a str, parts: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|line| parts.iter().all(|part| line.contains(part)))
        .collect()
}

/// Publishes `example:calc` 1.0.0, then a yank of a version it never released (rejected),
/// then asks for a record that does not exist. Returns the key id.
fn publish_and_fail(server: &TestServer) -> String {
    let client = server.client();
    let mut alice = Publisher::new("example:calc");
    alice.publish_init(&client);
    alice.publish_release(&client, "1.0.0", &fixture("b01-fac.component.wasm"));
    let yank = alice.sign(vec![PackageEntry::Yank {
        version: "9.9.9".parse().unwrap(),
    }]);
    let (status, _) = client.publish(&alice.name, &yank);
    assert_eq!(status, 202);
    assert!(matches!(
        client.wait(&alice.name, yank.record_id()),
        RecordState::Rejected { .. }
    ));
    let missing = client.get("v1/package/nothing-here/record/sha256:00");
    assert!(missing.status().is_client_error());
    // The published and rejected lines follow the round's commit; give the log a moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    alice.key.public_key().fingerprint().to_string()
}

#[test]
fn the_text_log_names_namespaces_records_and_failed_requests_without_colour() {
    let data = temp_dir("logs-text");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let key = publish_and_fail(&server);
    let log = server.log();
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal:\n{log}"
    );
    assert_eq!(
        lines_with(&log, &["hosted namespaces", "example"]).len(),
        1,
        "{log}"
    );
    let accepted = lines_with(&log, &["record accepted", "example:calc", &key]);
    assert_eq!(accepted.len(), 3, "{log}");
    assert!(accepted[1].contains("release 1.0.0"), "{}", accepted[1]);
    let published = lines_with(&log, &["record published", "example:calc", &key]);
    assert_eq!(published.len(), 2, "{log}");
    assert!(
        published[0].contains("entries=\"init\""),
        "{}",
        published[0]
    );
    assert!(published[1].contains("registry_index="), "{}", published[1]);
    let rejected = lines_with(
        &log,
        &["record rejected", "example:calc", "yank 9.9.9", &key],
    );
    assert_eq!(rejected.len(), 1, "{log}");
    assert!(rejected[0].contains("reason="), "{}", rejected[0]);
    let failed = lines_with(
        &log,
        &[
            "request failed",
            "/v1/package/nothing-here/record/sha256:00",
        ],
    );
    assert_eq!(failed.len(), 1, "{log}");
    assert!(
        failed[0].contains("status=4") && failed[0].contains("ms="),
        "{}",
        failed[0]
    );
}

#[test]
fn the_json_log_is_one_object_a_line() {
    let data = temp_dir("logs-json");
    let server = TestServer::start(&data, &["--namespace", "example", "--log-format", "json"]);
    let key = publish_and_fail(&server);
    let log = server.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let published: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["message"] == "record published" && e["package"] == "example:calc")
        .collect();
    assert_eq!(published.len(), 2, "{log}");
    assert_eq!(published[1]["entries"], "release 1.0.0");
    assert_eq!(published[1]["key"], key.as_str());
    assert!(published[1]["registry_index"].is_u64());
    let rejected: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["message"] == "record rejected")
        .collect();
    assert_eq!(rejected.len(), 1, "{log}");
    assert!(
        rejected[0]["reason"].as_str().unwrap().contains("9.9.9"),
        "{log}"
    );
    assert!(events
        .iter()
        .any(|e| e["message"] == "request failed" && e["status"].as_u64().unwrap() >= 400));
    assert!(events
        .iter()
        .any(|e| e["message"] == "hosted namespaces" && e["namespaces"] == "example"));
}
