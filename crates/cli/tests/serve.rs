//! `cairn serve` over real HTTP on loopback: the warg v1 API, split content storage, the
//! reference's bugs fixed, durability, and the offline commands.

mod support;

use cairn_log::{KeyPath, TreeHead};
use cairn_protocol::api::{
    ConsistencyResponse, FetchLogsResponse, InclusionResponse, RecordState,
    VerifyCheckpointResponse,
};
use cairn_protocol::proofs::{decode_log_bundle, decode_map_bundle};
use cairn_protocol::{prefix, Digest, SignedCheckpoint};
use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn a_fresh_registry_has_an_operator_log_and_a_signed_checkpoint() {
    let data = temp_dir("fresh");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let checkpoint = server.client().checkpoint().unwrap();
    assert_eq!(checkpoint.contents.log_length, 1);
    let key: cairn_protocol::PrivateKey = std::fs::read_to_string(data.join("operator.key"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    checkpoint.verify(key.public_key()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("operator.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let logs: FetchLogsResponse = server
        .client()
        .post_json("v1/fetch/logs", &json!({"logLength": 1}))
        .json()
        .unwrap();
    assert_eq!(logs.operator.len(), 1);
    assert!(!logs.more);
}

#[test]
fn publishing_and_fetching_a_component_round_trips_byte_for_byte() {
    let data = temp_dir("roundtrip");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let mut publisher = Publisher::new("example:calc");
    publisher.publish_init(&client);
    let bytes = fixture("b03-rs-calc.wac.component.wasm");
    publisher.publish_release(&client, "1.0.0", &bytes);

    let digest = Digest::of(&bytes);
    let sources: serde_json::Value = client.get(&format!("v1/content/{digest}")).json().unwrap();
    let source = &sources["contentSources"][digest.to_string()][0];
    assert_eq!(source["type"], "httpGet");
    assert_eq!(source["size"], bytes.len());
    let url = source["url"].as_str().unwrap();
    let response = client.http.get(url).send().unwrap();
    assert_eq!(
        response.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert_eq!(response.bytes().unwrap().as_ref(), &bytes[..]);

    // Ranges.
    let response = client
        .http
        .get(url)
        .header("range", "bytes=100-199")
        .send()
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes 100-199/{}", bytes.len()).as_str()
    );
    assert_eq!(response.bytes().unwrap().as_ref(), &bytes[100..200]);
    let response = client
        .http
        .get(url)
        .header("range", "bytes=-10")
        .send()
        .unwrap();
    assert_eq!(
        response.bytes().unwrap().as_ref(),
        &bytes[bytes.len() - 10..]
    );
    let response = client
        .http
        .get(url)
        .header("range", format!("bytes={}-", bytes.len()))
        .send()
        .unwrap();
    assert_eq!(response.status(), 416);

    // The split manifest extension names the same tree as `cairn hash`.
    let manifest = client
        .get(&format!("v1/cairn/content/{digest}/manifest"))
        .bytes()
        .unwrap();
    let manifest = cairn_split::Manifest::from_json(&manifest).unwrap();
    assert_eq!(
        manifest.tree_digest(),
        cairn_split::split(&bytes).unwrap().tree_digest()
    );
    // Fragments by digest and by raw CID.
    let module = manifest
        .blobs()
        .iter()
        .find(|b| b.kind == cairn_split::BlobKind::Module)
        .unwrap();
    let by_digest = client
        .get(&format!("v1/cairn/blobs/{}", module.digest))
        .bytes()
        .unwrap();
    assert_eq!(cairn_split::BlobId::of(&by_digest), module.digest);
    let by_cid = client
        .get(&format!("v1/cairn/blobs/{}", module.digest.to_cid()))
        .bytes()
        .unwrap();
    assert_eq!(by_cid, by_digest);
    // Every location of every blob.
    let sources: serde_json::Value = client
        .get(&format!("v1/cairn/content/{digest}/sources"))
        .json()
        .unwrap();
    let blobs = sources["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), manifest.blobs().len());
    for (listed, entry) in blobs.iter().zip(manifest.blobs()) {
        assert_eq!(listed["locations"][1]["cid"], entry.digest.to_cid());
        let url = listed["locations"][0]["url"].as_str().unwrap();
        let bytes = client.http.get(url).send().unwrap().bytes().unwrap();
        assert_eq!(cairn_split::BlobId::of(&bytes), entry.digest);
    }
}

#[test]
fn fetched_records_and_proofs_verify_against_the_checkpoint() {
    let data = temp_dir("proofs");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let mut publisher = Publisher::new("example:fac");
    publisher.publish_init(&client);
    let first = server.wait_for_checkpoint(2);
    let release = publisher.publish_release(&client, "0.1.0", &fixture("b01-fac.component.wasm"));
    let checkpoint: SignedCheckpoint = client.checkpoint().unwrap();
    let length = checkpoint.contents.log_length;

    let log_id = publisher.name.log_id();
    let logs: FetchLogsResponse = client
        .post_json(
            "v1/fetch/logs",
            &json!({"logLength": length, "packages": {log_id.to_string(): null}}),
        )
        .json()
        .unwrap();
    let records = &logs.packages[&log_id];
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].fetch_token, release);
    let head_index = records[1].registry_index;

    let inclusion: InclusionResponse = client
        .post_json(
            "v1/proof/inclusion",
            &json!({"logLength": length, "leafs": [head_index]}),
        )
        .json()
        .unwrap();
    let head = TreeHead {
        length,
        root: checkpoint.contents.log_root.to_hash(),
    };
    let leaf = cairn_log::leaf_hash(&prefix::log_leaf(&log_id, &release));
    decode_log_bundle(&inclusion.log)
        .unwrap()
        .verify_inclusion(&head, head_index, &leaf)
        .unwrap();
    let map_proof = &decode_map_bundle(&inclusion.map).unwrap()[0];
    map_proof
        .verify_inclusion(
            &checkpoint.contents.map_root.to_hash(),
            &KeyPath::of_key(log_id.digest().as_bytes()),
            &prefix::map_leaf(&release),
        )
        .unwrap();

    let old = first.contents.log_length;
    let consistency: ConsistencyResponse = client
        .post_json("v1/proof/consistency", &json!({"from": old, "to": length}))
        .json()
        .unwrap();
    let old_head = TreeHead {
        length: old,
        root: first.contents.log_root.to_hash(),
    };
    decode_log_bundle(&consistency.proof)
        .unwrap()
        .verify_consistency(&old_head, &head)
        .unwrap();

    // Fetching after the last token returns nothing new.
    let logs: FetchLogsResponse = client
        .post_json(
            "v1/fetch/logs",
            &json!({"logLength": length, "packages": {log_id.to_string(): release.to_string()}}),
        )
        .json()
        .unwrap();
    assert!(logs.packages[&log_id].is_empty());
    // Names.
    let names: serde_json::Value = client
        .post_json("v1/fetch/names", &json!({"packages": [log_id.to_string()]}))
        .json()
        .unwrap();
    assert_eq!(names["packages"][log_id.to_string()], "example:fac");
}

#[test]
fn publishing_the_same_record_again_is_idempotent() {
    let data = temp_dir("idempotent");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let mut publisher = Publisher::new("example:twice");
    let init = publisher.init();
    let (first, _) = client.publish(&publisher.name, &init);
    assert_eq!(first, 202);
    client.wait(&publisher.name, init.record_id());
    let (again, body) = client.publish(&publisher.name, &init);
    assert_eq!(again, 202);
    assert_eq!(body["state"], "published", "{body}");
    assert!(matches!(
        client.record_state(&publisher.name, init.record_id()).state,
        RecordState::Published { .. }
    ));
}

#[test]
fn releases_may_follow_an_init_that_is_not_sequenced_yet() {
    let data = temp_dir("early-release");
    // A long interval keeps the init pending while the releases arrive.
    let server = TestServer::start(
        &data,
        &["--namespace", "example", "--checkpoint-interval", "3s"],
    );
    let client = server.client();
    let bytes = fixture("b01-fac.component.wasm");
    let mut publisher = Publisher::new("example:early");
    let init = publisher.init();
    let (status, body) = client.publish(&publisher.name, &init);
    assert_eq!(status, 202, "{body}");
    let release = publisher.release("1.0.0", &bytes);
    let (status, body) = client.publish(&publisher.name, &release);
    assert_eq!(status, 202, "{body}");
    assert_ne!(
        body["state"], "published",
        "the init was sequenced too soon: {body}"
    );
    if body["state"] == "sourcing" {
        assert_eq!(
            client.upload(&publisher.name, release.record_id(), &bytes),
            201
        );
    }
    // Another key is not the init's: refused at once, as for a sequenced package.
    let mut stranger = Publisher::new("example:early");
    stranger.head = Some(*release.record_id());
    let forged = stranger.release("1.0.1", &bytes);
    let (status, body) = client.publish(&stranger.name, &forged);
    assert_eq!(status, 401, "{body}");
    for record in [&init, &release] {
        let state = client.wait(&publisher.name, record.record_id());
        assert!(matches!(state, RecordState::Published { .. }), "{state:?}");
    }
}

#[test]
fn an_unknown_fetch_token_is_a_404() {
    let data = temp_dir("token");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let unknown = cairn_protocol::RecordId::package_record(b"never published");
    let response = client.post_json(
        "v1/fetch/logs",
        &json!({"logLength": 1, "operator": unknown.to_string()}),
    );
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().unwrap();
    assert_eq!(
        body,
        json!({"status": 404, "type": "fetchToken", "id": unknown.to_string()})
    );
    let response = client.post_json(
        "v1/fetch/logs",
        &json!({"logLength": 1, "operator": "garbage"}),
    );
    assert_eq!(response.status(), 404);
    let response = client.post_json("v1/fetch/logs", &json!({"logLength": 7}));
    assert_eq!(
        response.json::<serde_json::Value>().unwrap(),
        json!({"status": 404, "type": "logLength", "id": 7})
    );
}

#[test]
fn verify_checkpoint_checks_the_signature_over_the_timestamped_checkpoint() {
    let data = temp_dir("verify");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let checkpoint = client.checkpoint().unwrap();
    let verdict: VerifyCheckpointResponse = client
        .post_json("v1/verify/checkpoint", &checkpoint)
        .json()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&verdict).unwrap(),
        json!({"checkpoint": "verified", "signature": "verified"})
    );
    let mut moved = checkpoint.clone();
    moved.contents.timestamp += 1;
    let verdict: serde_json::Value = client
        .post_json("v1/verify/checkpoint", &moved)
        .json()
        .unwrap();
    assert_eq!(
        verdict,
        json!({"checkpoint": "invalid", "signature": "invalid"})
    );
}

#[test]
fn a_warg_registry_header_naming_this_registry_is_accepted() {
    let data = temp_dir("header");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let host = server.url.trim_start_matches("http://").to_owned();
    let client = server.client();
    let ours = client
        .http
        .get(format!("{}/v1/fetch/checkpoint", server.url))
        .header("warg-registry", &host)
        .send()
        .unwrap();
    assert_eq!(ours.status(), 200);
    let other = client
        .http
        .get(format!("{}/v1/fetch/checkpoint", server.url))
        .header("warg-registry", "elsewhere.example")
        .send()
        .unwrap();
    assert_eq!(other.status(), 501);
    assert_eq!(other.headers()["access-control-allow-origin"], "*");
    // The reference answers in plain text; cairn, like every error of its API, in JSON with
    // the same message.
    let body: serde_json::Value = other.json().unwrap();
    assert_eq!(
        body,
        json!({"status": 501, "message": "`Warg-Registry` header is not supported"})
    );
}

const CORS_VARY: &str = "origin, access-control-request-method, access-control-request-headers";

#[test]
fn pages_of_any_origin_may_read_answers_and_send_json() {
    let data = temp_dir("cors");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let http = server.client().http;
    // A CORS preflight, here for a publish, is answered before routing, whatever the path.
    for path in ["v1/package/sha256:00/record", "no/such/path"] {
        let preflight = http
            .request(reqwest::Method::OPTIONS, format!("{}/{path}", server.url))
            .header("origin", "https://example.com")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .unwrap();
        assert_eq!(preflight.status(), 200, "{path}");
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert_eq!(headers["access-control-allow-methods"], "GET,POST");
        assert_eq!(
            headers["access-control-allow-headers"],
            "content-type,accept"
        );
        assert_eq!(headers["vary"], CORS_VARY);
        assert_eq!(preflight.bytes().unwrap().len(), 0);
    }
    // Answers of every kind carry the headers: JSON, errors, content, and OCI.
    let answers = [
        ("v1/fetch/checkpoint", 200),
        ("v1/no/such/endpoint", 404),
        (
            "v1/content/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            404,
        ),
        (".well-known/wasm-pkg/registry.json", 200),
        ("v2/", 200),
    ];
    for (path, status) in answers {
        let answer = http
            .get(format!("{}/{path}", server.url))
            .header("origin", "https://example.com")
            .send()
            .unwrap();
        assert_eq!(answer.status(), status, "{path}");
        assert_eq!(
            answer.headers()["access-control-allow-origin"],
            "*",
            "{path}"
        );
        let vary: Vec<_> = answer.headers().get_all("vary").iter().collect();
        assert!(vary.iter().any(|v| *v == CORS_VARY), "{path}: {vary:?}");
    }
}

#[test]
fn uploads_must_be_valid_webassembly_within_the_size_limit() {
    let data = temp_dir("invalid");
    let server = TestServer::start(
        &data,
        &["--namespace", "example", "--max-content-size", "100KiB"],
    );
    let client = server.client();
    let mut publisher = Publisher::new("example:bad");
    publisher.publish_init(&client);

    let not_wasm = b"this is not webassembly".to_vec();
    let record = publisher.release("1.0.0", &not_wasm);
    let (status, body) = client.publish(&publisher.name, &record);
    assert_eq!(
        (status.as_u16(), body["state"].as_str()),
        (202, Some("sourcing"))
    );
    assert_eq!(
        client.upload(&publisher.name, record.record_id(), &not_wasm),
        422
    );
    assert!(matches!(
        client
            .record_state(&publisher.name, record.record_id())
            .state,
        RecordState::Rejected { .. }
    ));

    // A digest mismatch is a 400 and loses nothing: the record still waits for its content.
    publisher.head = Some(registry_head(&client, &publisher.name));
    let bytes = fixture("b01-fac.component.wasm");
    let record = publisher.release("1.0.1", &bytes);
    client.publish(&publisher.name, &record);
    let wrong = client
        .http
        .post(format!(
            "{}/v1/package/{}/record/{}/content/{}",
            server.url,
            publisher.name.log_id(),
            record.record_id(),
            Digest::of(&bytes)
        ))
        .body(b"other bytes".to_vec())
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 400);
    assert_eq!(
        client.upload(&publisher.name, record.record_id(), &bytes),
        201
    );
    assert!(matches!(
        client.wait(&publisher.name, record.record_id()),
        RecordState::Published { .. }
    ));

    // Over the limit (the 181 KB composition against 100 KiB).
    let big = fixture("b03-rs-calc.wac.component.wasm");
    let record = publisher.release("2.0.0", &big);
    client.publish(&publisher.name, &record);
    assert_eq!(
        client.upload(&publisher.name, record.record_id(), &big),
        413
    );
}

/// The head of a package's log as the registry has it (a rejected record is not in it).
fn registry_head(client: &Client, name: &cairn_protocol::PackageName) -> cairn_protocol::RecordId {
    let checkpoint = client.checkpoint().unwrap();
    let log_id = name.log_id();
    let logs: FetchLogsResponse = client
        .post_json("v1/fetch/logs", &json!({"logLength": checkpoint.contents.log_length, "packages": {log_id.to_string(): null}}))
        .json()
        .unwrap();
    logs.packages[&log_id].last().unwrap().fetch_token
}

#[test]
fn json_errors_have_the_reference_statuses_and_bodies() {
    let data = temp_dir("errors");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let url = format!("{}/v1/fetch/logs", server.url);
    let no_type = client.http.post(&url).body("{}").send().unwrap();
    assert_eq!(no_type.status(), 415);
    let syntax = client
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .unwrap();
    assert_eq!(syntax.status(), 400);
    let unknown = client.post_json("v1/fetch/logs", &json!({"logLength": 1, "bogus": true}));
    assert_eq!(unknown.status(), 422);
    assert_eq!(unknown.headers()["content-type"], "application/json");
    let missing = client.get("v1/no/such/route");
    assert_eq!(
        missing.json::<serde_json::Value>().unwrap(),
        json!({"status": 404, "message": "the requested resource was not found"})
    );
    let bad_path = client.get("v1/package/sha256:ABC/record/sha256:00");
    assert_eq!(bad_path.status(), 400);

    let mut outsider = Publisher::new("elsewhere:pkg");
    let init = outsider.init();
    let (status, body) = client.publish(&outsider.name, &init);
    assert_eq!(
        (status.as_u16(), body),
        (
            404,
            json!({"status": 404, "type": "namespace", "id": "elsewhere"})
        )
    );

    // A release signed by a key the package does not know.
    let mut owner = Publisher::new("example:owned");
    owner.publish_init(&client);
    let mut stranger = Publisher {
        key: cairn_protocol::PrivateKey::generate().unwrap(),
        name: owner.name.clone(),
        head: owner.head,
    };
    let (status, body) = client.publish(&owner.name, &stranger.release("1.0.0", b"x"));
    assert_eq!(status, 401, "{body}");
    assert!(body["message"].as_str().unwrap().contains("unknown key id"));
}

#[test]
fn fragments_shared_by_two_packages_are_stored_once() {
    let data = temp_dir("dedup");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let bytes = fixture("b03-rs-calc.wac.component.wasm");
    let mut a = Publisher::new("example:calc-a");
    a.publish_init(&client);
    a.publish_release(&client, "1.0.0", &bytes);
    let blobs_dir = data.join("content/blobs/sha256");
    let after_first = std::fs::read_dir(&blobs_dir).unwrap().count();
    assert_eq!(
        after_first,
        cairn_split::split(&bytes).unwrap().blobs().len()
    );
    // The same component under another package, and a component holding one of its modules:
    // no new blob for what is already stored.
    let mut b = Publisher::new("example:calc-b");
    b.publish_init(&client);
    b.publish_release(&client, "1.0.0", &bytes);
    assert_eq!(std::fs::read_dir(&blobs_dir).unwrap().count(), after_first);
}

#[test]
fn audit_passes_after_a_restart_and_offline_administration_works() {
    let data = temp_dir("audit");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let mut publisher = Publisher::new("example:fac");
    publisher.publish_init(&client);
    publisher.publish_release(&client, "1.0.0", &fixture("b01-fac.component.wasm"));
    // Administration refuses to run beside a serving registry.
    let (ok, _, stderr) = cairn(&[
        "admin",
        "define-namespace",
        "--data",
        data.to_str().unwrap(),
        "other",
    ]);
    assert!(!ok && stderr.contains("running"), "{stderr}");
    assert!(server.stop().success());

    let data_arg = data.to_str().unwrap();
    let (ok, stdout, stderr) = cairn(&["audit", "--data", data_arg]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("audit passed"), "{stdout}");
    assert!(stdout.contains("1 contents re-joined"), "{stdout}");

    let (ok, _, stderr) = cairn(&["admin", "define-namespace", "--data", data_arg, "other"]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = cairn(&["admin", "define-namespace", "--data", data_arg, "other"]);
    assert!(!ok && stderr.contains("already defined"), "{stderr}");
    let extra = cairn_protocol::PrivateKey::generate().unwrap();
    let (ok, stdout, stderr) = cairn(&[
        "admin",
        "grant",
        "--data",
        data_arg,
        &extra.public_key().to_string(),
        "--permission",
        "commit",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let granted: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(granted["granted"], serde_json::json!(["commit"]));
    assert_eq!(
        granted["keyId"],
        extra.public_key().fingerprint().to_string()
    );
    let (ok, _, stderr) = cairn(&[
        "admin",
        "revoke",
        "--data",
        data_arg,
        &extra.public_key().fingerprint().to_string(),
        "--permission",
        "commit",
    ]);
    assert!(ok, "{stderr}");
    let old_key = std::fs::read_to_string(data.join("operator.key")).unwrap();
    let (ok, stdout, stderr) = cairn(&["admin", "rotate-key", "--data", data_arg, "--json"]);
    assert!(ok, "{stderr}");
    let rotated: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let new_text = std::fs::read_to_string(data.join("operator.key")).unwrap();
    assert_ne!(new_text, old_key);
    let old: cairn_protocol::PrivateKey = old_key.trim().parse().unwrap();
    assert_eq!(
        rotated["previousKeyId"],
        old.public_key().fingerprint().to_string()
    );
    let rotated_to: cairn_protocol::PrivateKey = new_text.trim().parse().unwrap();
    assert_eq!(
        rotated["keyId"],
        rotated_to.public_key().fingerprint().to_string()
    );
    let (ok, _, stderr) = cairn(&["audit", "--data", data_arg]);
    assert!(ok, "{stderr}");

    // The registry serves again, with the new namespace, checkpoints signed by the new key.
    let server = TestServer::start(&data, &[]);
    let client = server.client();
    let mut other = Publisher::new("other:pkg");
    other.publish_init(&client);
    let new_key: cairn_protocol::PrivateKey = std::fs::read_to_string(data.join("operator.key"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    client
        .checkpoint()
        .unwrap()
        .verify(new_key.public_key())
        .unwrap();
}

#[test]
fn records_fetched_from_a_restarted_registry_are_the_same() {
    let data = temp_dir("restart");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let mut publisher = Publisher::new("example:fac");
    publisher.publish_init(&client);
    let before = client.checkpoint().unwrap();
    assert!(server.stop().success());
    let server = TestServer::start(&data, &[]);
    let after = server.client().checkpoint().unwrap();
    assert_eq!(
        after, before,
        "a restart with nothing new makes no new checkpoint"
    );
}

#[test]
fn the_longest_checkpoint_interval_is_kept() {
    // A century, the longest accepted: far longer than the machine's uptime, which the
    // monotonic clock counts from.
    let data = temp_dir("long-interval");
    let server = TestServer::start(
        &data,
        &["--namespace", "example", "--checkpoint-interval", "876000h"],
    );
    // The first round runs at once; the server stays up with its sequencer.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(server.client().checkpoint().unwrap().contents.log_length, 1);
    let log = server.stderr.lock().unwrap().clone();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("sequencer stopped"), "{log}");
    assert!(server.stop().success());
}

#[test]
fn publish_answers_alike_whether_its_path_is_escaped_or_not() {
    // The publish route has a way in of its own, past the router (see `Front`); a path with
    // escapes goes through the router instead. Both must answer alike.
    let data = temp_dir("escaped");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let mut publisher = Publisher::new("example:escaped");
    let init = publisher.init();
    let request = serde_json::to_value(cairn_protocol::api::PublishRecordRequest {
        package_name: publisher.name.clone(),
        record: (&init).into(),
        content_sources: Default::default(),
    })
    .unwrap();
    let log_id = publisher.name.log_id().to_string();
    let other_log = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    // A publish path past the router, and one through it.
    let fast = |log_id: &str| format!("v1/package/{log_id}/record");
    let routed = |log_id: &str| format!("v1/package/{}/record", log_id.replace(':', "%3A"));
    let answer = |path: &str, content_type: &str, body: String| {
        let response = client
            .http
            .post(format!("{}/{path}", server.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let cors = response.headers()["access-control-allow-origin"].clone();
        assert_eq!(cors, "*", "{path}");
        (status, response.text().unwrap())
    };
    let bad = |path: &dyn Fn(&str) -> String| {
        [
            answer(&path(&log_id), "text/plain", request.to_string()),
            answer(&path(&log_id), "application/json", "{".into()),
            answer(
                &path(&log_id),
                "application/json",
                json!({"bogus": 1}).to_string(),
            ),
            answer(&path(other_log), "application/json", request.to_string()),
        ]
    };
    let answers = bad(&fast);
    assert_eq!(answers, bad(&routed));
    assert_eq!(
        answers
            .iter()
            .map(|(status, _)| *status)
            .collect::<Vec<_>>(),
        [415, 400, 422, 400]
    );
    // The record itself, through the router first and then again past it: the second is the
    // idempotent answer about the same record.
    let (status, first) = answer(&routed(&log_id), "application/json", request.to_string());
    assert_eq!(status, 202, "{first}");
    let (status, again) = answer(&fast(&log_id), "application/json", request.to_string());
    assert_eq!(status, 202, "{again}");
    let id =
        |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap()["recordId"].clone();
    assert_eq!(id(&first), json!(init.record_id().to_string()));
    assert_eq!(id(&again), id(&first));
}

#[test]
fn the_audit_fails_on_a_changed_blob_and_names_the_content() {
    let data = temp_dir("audit-tampered");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let bytes = fixture("b03-rs-calc.wac.component.wasm");
    let mut publisher = Publisher::new("example:fac");
    publisher.publish_init(&client);
    publisher.publish_release(&client, "1.0.0", &bytes);
    assert!(server.stop().success());

    // Change one byte of every blob kept compressed (the last of its zstd frame, in its
    // checksum): the frame no longer decodes to the blob.
    let blobs = data.join("content/blobs/sha256");
    let compressed: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "zst"))
        .collect();
    assert!(!compressed.is_empty());
    for path in compressed {
        let mut stored = std::fs::read(&path).unwrap();
        let last = stored.len() - 1;
        stored[last] ^= 1;
        std::fs::write(&path, stored).unwrap();
    }
    let data_arg = data.to_str().unwrap();
    let (ok, _, stderr) = cairn(&["audit", "--data", data_arg]);
    assert!(!ok, "the audit passed over changed blobs");
    let content = cairn_protocol::Digest::of(&bytes).to_string();
    assert!(
        stderr.contains(&format!("content {content} does not join")),
        "{stderr}"
    );
    // The log itself is intact.
    let (ok, stdout, stderr) = cairn(&["audit", "--data", data_arg, "--skip-content"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("audit passed"), "{stdout}");
}

#[test]
fn blobs_are_sent_in_zstd_as_stored_to_clients_that_accept_it() {
    let data = temp_dir("blobs-zstd");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let bytes = fixture("b03-rs-calc.wac.component.wasm");
    let mut publisher = Publisher::new("example:calc");
    publisher.publish_init(&client);
    publisher.publish_release(&client, "1.0.0", &bytes);
    let split = cairn_split::split(&bytes).unwrap();
    let largest = split
        .blobs()
        .iter()
        .max_by_key(|blob| blob.bytes.len())
        .unwrap();
    let url = format!("{}/v1/cairn/blobs/{}", server.url, largest.digest);
    let get = |accept: Option<&str>| {
        let (status, encoding, body) = get_encoded(&client, &url, accept, None);
        assert_eq!(status, 200);
        (encoding, body)
    };
    // Asked for zstd: the stored frame, smaller, which decompresses to the blob.
    let (encoding, body) = get(Some("gzip, zstd"));
    assert_eq!(encoding.as_deref(), Some("zstd"));
    assert!(body.len() < largest.bytes.len(), "{} bytes", body.len());
    assert_eq!(zstd::decode_all(&body[..]).unwrap(), &largest.bytes[..]);
    // gzip only: made as it streams.
    for accept in [Some("gzip"), Some("zstd;q=0, gzip")] {
        let (encoding, body) = get(accept);
        assert_eq!(encoding.as_deref(), Some("gzip"), "{accept:?}");
        assert!(body.len() < largest.bytes.len(), "{} bytes", body.len());
        assert_eq!(gunzip(&body), largest.bytes.as_ref(), "{accept:?}");
    }
    // Not asked, or refused with q=0: the blob as it is, byte for byte.
    for accept in [None, Some("zstd;q=0"), Some("br")] {
        let (encoding, body) = get(accept);
        assert_eq!(encoding, None, "{accept:?}");
        assert_eq!(body, &largest.bytes[..], "{accept:?}");
    }
}

/// GETs `url` with `Accept-Encoding: accept` and `Range: range` when given; checks the answer
/// varies by encoding; returns its status, its `Content-Encoding` and its body.
fn get_encoded(
    client: &Client,
    url: &str,
    accept: Option<&str>,
    range: Option<&str>,
) -> (reqwest::StatusCode, Option<String>, Vec<u8>) {
    let mut request = client.http.get(url);
    if let Some(accept) = accept {
        request = request.header("Accept-Encoding", accept);
    }
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    let response = request.send().unwrap();
    assert_eq!(header(&response, "vary"), "accept-encoding");
    let status = response.status();
    let encoding = response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, encoding, response.bytes().unwrap().to_vec())
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut bytes).unwrap();
    bytes
}

/// A whole file asked for in zstd is a sequence of zstd frames: each module as the store keeps
/// it (the stored frame, byte for byte: nothing is compressed again) and the bytes between
/// them compressed; it decodes to the file. gzip is made as it streams. A range, or a request
/// accepting neither, gets the file's bytes as they are.
#[test]
fn whole_files_are_sent_as_the_stored_frames_of_their_modules() {
    let data = temp_dir("whole-zstd");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let bytes = fixture("b03-rs-calc.wac.component.wasm");
    let mut publisher = Publisher::new("example:calc");
    publisher.publish_init(&client);
    publisher.publish_release(&client, "1.0.0", &bytes);
    let digest = Digest::of(&bytes).to_string();
    let url = format!(
        "{}/content/sha256-{}",
        server.url,
        digest.trim_start_matches("sha256:")
    );
    let get = |accept: Option<&str>, range: Option<&str>| {
        let (status, encoding, body) = get_encoded(&client, &url, accept, range);
        assert!(status.is_success(), "{status}");
        (status, encoding, body)
    };

    let (_, encoding, body) = get(Some("zstd"), None);
    assert_eq!(encoding.as_deref(), Some("zstd"));
    assert!(body.len() < bytes.len() / 2, "{} bytes", body.len());
    assert_eq!(zstd::decode_all(&body[..]).unwrap(), bytes);
    let stored = data.join("content/blobs/sha256");
    let mut frames = 0;
    for blob in cairn_split::split(&bytes).unwrap().blobs() {
        let path = stored.join(format!("{}.zst", blob.digest.to_hex()));
        if blob.kind == cairn_split::BlobKind::Module && path.exists() {
            let frame = std::fs::read(&path).unwrap();
            assert!(
                body.windows(frame.len()).any(|window| window == frame),
                "the stored frame of {} is not in the body",
                blob.digest
            );
            frames += 1;
        }
    }
    assert!(frames >= 2, "{frames} modules stored compressed");

    let (_, encoding, body) = get(Some("gzip"), None);
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert_eq!(gunzip(&body), bytes);
    for accept in [None, Some("zstd;q=0")] {
        let (_, encoding, body) = get(accept, None);
        assert_eq!(encoding, None, "{accept:?}");
        assert_eq!(body, bytes, "{accept:?}");
    }
    for accept in ["zstd", "gzip"] {
        let (status, encoding, body) = get(Some(accept), Some("bytes=100-199"));
        assert_eq!(status, 206);
        assert_eq!(encoding, None);
        assert_eq!(body, &bytes[100..200]);
    }
}

/// The value of the metric line `name` (with its labels) in a Prometheus text answer.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// What an operator's tools ask: `/healthz`, `/readyz` and `/metrics` count what happened.
#[test]
fn health_readiness_and_metrics_follow_what_the_registry_does() {
    let data = temp_dir("operations");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let health = client.get("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().unwrap(), "ok\n");
    let ready = client.get("readyz");
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().unwrap(),
        json!({"ready": true, "database": "ok", "content": "ok", "sequencer": true})
    );

    // Two builds of one application in two packages (they share modules), and a release of
    // a version that exists, which the sequencer rejects.
    let (first, second) = (
        fixture("greeter-1.component.wasm"),
        fixture("greeter-2.component.wasm"),
    );
    let mut one = Publisher::new("example:one");
    one.publish_init(&client);
    one.publish_release(&client, "1.0.0", &first);
    let mut two = Publisher::new("example:two");
    two.publish_init(&client);
    two.publish_release(&client, "1.0.0", &second);
    let again = one.release("1.0.0", &first);
    assert_eq!(client.publish(&one.name, &again).0, 202);
    assert!(matches!(
        client.wait(&one.name, again.record_id()),
        RecordState::Rejected { .. }
    ));

    let response = client.get("metrics");
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("application/openmetrics-text"));
    let text = response.text().unwrap();
    assert_eq!(metric(&text, "cairn_records_accepted_total"), 5.0);
    assert_eq!(
        metric(&text, "cairn_records_rejected_total{reason=\"invalid\"}"),
        1.0
    );
    assert_eq!(metric(&text, "cairn_sequencer_pending_records"), 0.0);
    let checkpoint = client.checkpoint().unwrap();
    assert_eq!(
        metric(&text, "cairn_log_length"),
        checkpoint.contents.log_length as f64
    );
    // This process published every record of the log: the four above and the operator's.
    assert_eq!(
        metric(&text, "cairn_records_published_total"),
        checkpoint.contents.log_length as f64
    );
    assert!(checkpoint.contents.log_length >= 5);
    assert!(metric(&text, "cairn_checkpoint_age_seconds") < 60.0);
    assert_eq!(metric(&text, "cairn_contents"), 2.0);
    let whole = (first.len() + second.len()) as f64;
    assert_eq!(metric(&text, "cairn_content_bytes"), whole);
    let mut distinct = std::collections::BTreeMap::new();
    for bytes in [&first, &second] {
        for blob in cairn_split::split(bytes).unwrap().blobs() {
            distinct.insert(blob.digest, blob.bytes.len());
        }
    }
    let stored = distinct.values().sum::<usize>() as f64;
    assert_eq!(metric(&text, "cairn_stored_blob_bytes"), stored);
    assert_eq!(metric(&text, "cairn_sharing_saved_bytes"), whole - stored);
    assert!(whole - stored > 0.0);
    assert_eq!(metric(&text, "cairn_sequencer"), 1.0);
    assert!(
        metric(
            &text,
            "cairn_http_requests_total{method=\"POST\",route=\"/v1/package/{logId}/record\",status=\"202\"}"
        ) >= 5.0
    );
    assert!(text.contains("cairn_http_request_duration_seconds_bucket{le="));
}

/// Under a steady stream of records, checkpoints are at most one per interval (the sequencer
/// no longer counts rounds that found nothing, so this holds by the rounds that did).
#[test]
fn checkpoints_are_at_most_one_per_interval_under_load() {
    let data = temp_dir("interval-load");
    let interval = Duration::from_millis(400);
    let server = TestServer::start(
        &data,
        &["--namespace", "example", "--checkpoint-interval", "400ms"],
    );
    let client = server.client();
    let started = Instant::now();
    let mut sent = Vec::new();
    while started.elapsed() < Duration::from_secs(2) {
        let mut publisher = Publisher::new(&format!("example:load-n{}", sent.len()));
        let init = publisher.init();
        assert_eq!(client.publish(&publisher.name, &init).0, 202);
        sent.push((publisher.name, *init.record_id()));
        std::thread::sleep(Duration::from_millis(20));
    }
    for (name, record_id) in &sent {
        assert!(matches!(
            client.wait(name, record_id),
            RecordState::Published { .. }
        ));
    }
    let elapsed = started.elapsed();
    assert!(server.stop().success());
    let (ok, stdout, stderr) = cairn(&[
        "audit",
        "--data",
        data.to_str().unwrap(),
        "--skip-content",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let checkpoints = report["checkpoints"].as_u64().unwrap();
    // The operator's at start, then at most one per interval while records came.
    let most = 1 + (elapsed.as_secs_f64() / interval.as_secs_f64()).ceil() as u64 + 1;
    assert!(
        (3..=most).contains(&checkpoints),
        "{checkpoints} checkpoints for {} records in {elapsed:?}",
        sent.len()
    );
    assert!(checkpoints < sent.len() as u64 / 4);
}
