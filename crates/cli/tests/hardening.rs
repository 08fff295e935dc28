//! What an anonymous client can make `cairn serve` spend is bounded: memory (request lists,
//! upload bodies, blob reads), disk (uploads no record completes), connections (idle and over
//! the cap), and every error answer is typed JSON. Each test drives the real server over
//! loopback HTTP; memory is read from `/proc`, and every load is bounded in count and time.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cairn_protocol::api::InclusionResponse;
use cairn_protocol::proofs::decode_map_bundle;
use cairn_protocol::{Digest, Envelope, PackageEntry, Record, Timestamp};
use serde_json::{json, Value};
use support::*;

const MIB: u64 = 1 << 20;

/// Sends `head` (a request without its body) on a new connection and reads the answer:
/// status and body. The server must answer without waiting for the body.
fn answer_without_body(server: &TestServer, head: &str) -> (u16, Value) {
    let address = server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    read_answer(&mut stream).expect("the server answered before the body was sent")
}

/// Reads one HTTP/1.1 answer with a `content-length` body: status and JSON body.
fn read_answer(stream: &mut TcpStream) -> Option<(u16, Value)> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split(' ').nth(1)?.parse().ok()?;
                let json = serde_json::from_str(&body[..length]).unwrap_or(Value::Null);
                return Some((status, json));
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Asserts a warg error body: `{"status": status, "message": ...}`.
fn assert_warg_error(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected, "{body}");
    assert!(body["message"].is_string(), "{body}");
}

/// A registry hosting `example` with one published package, and a record of it waiting for
/// content that was never uploaded.
fn registry_with_sourcing_record(name: &str, extra: &[&str]) -> (TestServer, Publisher, String) {
    let data = temp_dir(name);
    let mut flags = vec!["--namespace", "example"];
    flags.extend_from_slice(extra);
    let server = TestServer::start(&data, &flags);
    let client = server.client();
    let mut publisher = Publisher::new("example:big");
    publisher.publish_init(&client);
    let content = fixture("b01-fac.component.wasm");
    let record = publisher.release("1.0.0", &content);
    let (status, body) = client.publish(&publisher.name, &record);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "sourcing", "{body}");
    let path = format!(
        "v1/package/{}/record/{}",
        publisher.name.log_id(),
        record.record_id()
    );
    (server, publisher, path)
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

// ---------------------------------------------------------------------------------------
// Lists a client sends.

#[test]
fn inclusion_requests_are_bounded_and_each_leaf_is_proven_once() {
    let data = temp_dir("harden-inclusion");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    Publisher::new("example:a").publish_init(&client);
    let length = server.wait_for_checkpoint(2).contents.log_length;

    // A leaf named again is proven once.
    let response: InclusionResponse = client
        .post_json(
            "v1/proof/inclusion",
            &json!({"logLength": length, "leafs": [1, 1, 0, 1, 0]}),
        )
        .json()
        .unwrap();
    assert_eq!(decode_map_bundle(&response.map).unwrap().len(), 2);

    // More leaves than a request may name.
    let response = client.post_json(
        "v1/proof/inclusion",
        &json!({"logLength": length, "leafs": vec![1; 10_001]}),
    );
    let status = response.status().as_u16();
    let body: Value = response.json().unwrap();
    assert_warg_error(status, &body, 400);
    assert!(
        body["message"].as_str().unwrap().contains("10000"),
        "{body}"
    );

    // The request that made a 629 MB answer: the same leaf a million times, in under 2 MB.
    let before = server.memory("VmHWM");
    let body = format!(
        r#"{{"logLength":{length},"leafs":[{}1]}}"#,
        "1,".repeat(999_999)
    );
    let started = Instant::now();
    let response = client
        .http
        .post(format!("{}/v1/proof/inclusion", server.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer = response.bytes().unwrap();
    assert!(answer.len() < 1024, "{} bytes", answer.len());
    let grown = server.memory("VmHWM").saturating_sub(before);
    assert!(
        grown < 64 * MIB,
        "server memory grew by {} MiB",
        grown / MIB
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn fetch_requests_name_a_bounded_number_of_logs() {
    let data = temp_dir("harden-fetch");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let packages: serde_json::Map<String, Value> = (0..10_001u32)
        .map(|i| (format!("sha256:{i:064x}"), Value::Null))
        .collect();
    let response = client.post_json(
        "v1/fetch/logs",
        &json!({"logLength": 1, "packages": packages}),
    );
    let status = response.status().as_u16();
    let body: Value = response.json().unwrap();
    assert_warg_error(status, &body, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("too many packages"),
        "{body}"
    );
}

// ---------------------------------------------------------------------------------------
// Upload bodies.

#[test]
fn an_upload_is_refused_before_its_body_is_read() {
    let (server, publisher, record_path) =
        registry_with_sourcing_record("harden-early", &["--max-content-size", "1MiB"]);
    let log_id = publisher.name.log_id();
    let digest = Digest::of(&fixture("b01-fac.component.wasm"));
    let declared = 200 * MIB;
    let head = |path: &str, method: &str| {
        format!(
            "{method} /{path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/octet-stream\r\n\
             content-length: {declared}\r\n\r\n"
        )
    };
    // A made-up package, a made-up record: 404 at once.
    let made_up = format!("sha256:{}", "ab".repeat(32));
    let (status, body) = answer_without_body(
        &server,
        &head(
            &format!("v1/package/{made_up}/record/{made_up}/content/{digest}"),
            "POST",
        ),
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["type"], "log", "{body}");
    let (status, body) = answer_without_body(
        &server,
        &head(
            &format!("v1/package/{log_id}/record/{made_up}/blobs/{digest}"),
            "PUT",
        ),
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["type"], "record", "{body}");
    // Content the record does not need: 400 at once.
    let (status, body) = answer_without_body(
        &server,
        &head(
            &format!(
                "{record_path}/content/sha256:{made_up_hex}",
                made_up_hex = "cd".repeat(32)
            ),
            "POST",
        ),
    );
    assert_warg_error(status, &body, 400);
    // The record's content, declared larger than the registry takes: 413 at once.
    let (status, body) = answer_without_body(
        &server,
        &head(&format!("{record_path}/content/{digest}"), "POST"),
    );
    assert_warg_error(status, &body, 413);
    let (status, body) = answer_without_body(
        &server,
        &head(&format!("{record_path}/blobs/{digest}"), "PUT"),
    );
    assert_warg_error(status, &body, 413);
}

#[test]
fn upload_bodies_are_streamed_to_disk_and_removed() {
    let (server, _, record_path) =
        registry_with_sourcing_record("harden-stream", &["--max-content-size", "512MiB"]);
    let digest = Digest::of(&fixture("b01-fac.component.wasm"));
    let url = format!("{}/{record_path}/content/{digest}", server.url);
    let before = server.memory("VmHWM");
    // Three uploads of 48 MiB at once, none of them the content (their digests differ).
    let uploads: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let size = 48 * MIB;
                let body = reqwest::blocking::Body::sized(std::io::repeat(7).take(size), size);
                reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .unwrap()
                    .post(url)
                    .body(body)
                    .send()
                    .unwrap()
            })
        })
        .collect();
    for upload in uploads {
        let response = upload.join().unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().unwrap();
        assert_warg_error(status, &body, 400);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("digest mismatch"),
            "{body}"
        );
    }
    let grown = server.memory("VmHWM").saturating_sub(before);
    assert!(
        grown < 32 * MIB,
        "server memory grew by {} MiB while receiving 144 MiB",
        grown / MIB
    );
    // Nothing of them is left on disk.
    assert_eq!(files_in(&server.data.join("uploads/tmp")), 0);
}

#[test]
fn temporary_files_of_interrupted_uploads_are_removed_at_start() {
    let data = temp_dir("harden-leftovers");
    let tmp = data.join("uploads/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("12345-0"), vec![0u8; 4096]).unwrap();
    let _server = TestServer::start(&data, &["--namespace", "example"]);
    assert_eq!(files_in(&tmp), 0);
}

#[test]
fn blobs_wait_for_their_record_within_caps_and_a_deadline() {
    // Records may stage twice the largest content (8 KiB), 10 KiB in all, for 1 s.
    let (server, mut publisher, record_a) = registry_with_sourcing_record(
        "harden-staged",
        &[
            "--max-content-size",
            "4KiB",
            "--max-pending-uploads",
            "10KiB",
            "--upload-deadline",
            "1s",
        ],
    );
    let client = server.client();
    let record_b = publisher.release("2.0.0", &fixture("b03-rs-calc.wac.component.wasm"));
    let (status, body) = client.publish(&publisher.name, &record_b);
    assert_eq!(status, 202, "{body}");
    let record_b = format!(
        "v1/package/{}/record/{}",
        publisher.name.log_id(),
        record_b.record_id()
    );
    let put = |record: &str, seed: u8| {
        let bytes = vec![seed; 3000];
        let digest = Digest::of(&bytes);
        let response = client
            .http
            .put(format!("{}/{record}/blobs/{digest}", server.url))
            .body(bytes)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json::<Value>().unwrap_or(Value::Null),
            digest,
        )
    };
    let (status, _, staged) = put(&record_a, 1);
    assert_eq!(status, 201);
    // Staged, not stored: nobody can read it back as a blob.
    let response = client.get(&format!("v1/cairn/blobs/{staged}"));
    assert_eq!(response.status(), 404);
    assert_eq!(put(&record_a, 2).0, 201);
    // A third would pass the record's share.
    let (status, body, _) = put(&record_a, 3);
    assert_warg_error(status, &body, 413);
    assert_eq!(put(&record_b, 4).0, 201);
    // A fourth in all would pass the registry's, and the server says so in its log.
    let (status, body, _) = put(&record_b, 5);
    assert_warg_error(status, &body, 507);
    assert!(
        server
            .log()
            .contains("unfinished uploads fill --max-pending-uploads"),
        "{}",
        server.log()
    );
    // A blob larger than any content.
    let bytes = vec![9u8; 5000];
    let response = client
        .http
        .put(format!(
            "{}/{record_b}/blobs/{}",
            server.url,
            Digest::of(&bytes)
        ))
        .body(bytes)
        .send()
        .unwrap();
    assert_eq!(response.status(), 413);

    // Past the deadline they are removed, and there is room again.
    let records = server.data.join("uploads/records");
    let deadline = Instant::now() + Duration::from_secs(10);
    while files_in(&records) > 0 {
        assert!(Instant::now() < deadline, "staged blobs were not removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(put(&record_b, 5).0, 201);
    assert!(
        server.log().contains("not completed in time"),
        "{}",
        server.log()
    );
}

#[test]
fn blob_reads_are_streamed() {
    let data = temp_dir("harden-blob-read");
    let server = TestServer::start(
        &data,
        &["--namespace", "example", "--max-content-size", "64MiB"],
    );
    let client = server.client();
    // A core module of 40 MiB (one custom section): one large fragment.
    let payload = 40 * MIB as usize;
    let mut module = b"\0asm\x01\0\0\0\0".to_vec();
    let mut size = payload + 2;
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        module.push(if size == 0 { byte } else { byte | 0x80 });
        if size == 0 {
            break;
        }
    }
    module.extend_from_slice(b"\x01x");
    module.resize(module.len() + payload, 0);
    let mut publisher = Publisher::new("example:large");
    publisher.publish_init(&client);
    publisher.publish_release(&client, "1.0.0", &module);
    let split = cairn_split::split(&module).unwrap();
    let largest = split
        .manifest()
        .blobs()
        .iter()
        .max_by_key(|blob| blob.size)
        .unwrap()
        .digest;

    let before = server.memory("VmHWM");
    let reads: Vec<_> = (0..4)
        .map(|_| {
            let url = format!("{}/v1/cairn/blobs/{largest}", server.url);
            std::thread::spawn(move || {
                let response = reqwest::blocking::get(url).unwrap();
                assert_eq!(response.status(), 200);
                let mut read = 0u64;
                let mut reader = response;
                let mut buffer = vec![0u8; 1 << 16];
                loop {
                    let n = reader.read(&mut buffer).unwrap();
                    if n == 0 {
                        break;
                    }
                    read += n as u64;
                    // A slow reader, so that the reads overlap.
                    std::thread::sleep(Duration::from_micros(200));
                }
                read
            })
        })
        .collect();
    for read in reads {
        assert!(read.join().unwrap() >= payload as u64);
    }
    let grown = server.memory("VmHWM").saturating_sub(before);
    assert!(
        grown < 32 * MIB,
        "server memory grew by {} MiB serving four reads of a 40 MiB blob",
        grown / MIB
    );
}

// ---------------------------------------------------------------------------------------
// Connections.

#[test]
fn idle_connections_are_closed_and_those_over_the_cap_refused() {
    let data = temp_dir("harden-connections");
    // A low open-file limit (soft 150, hard 300, which the server raises to), a cap of 64
    // connections, and one second to send a request's headers.
    let server = TestServer::start_with_open_files(
        &data,
        &[
            "--namespace",
            "example",
            "--max-connections",
            "64",
            "--header-timeout",
            "1s",
        ],
        150,
        300,
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    assert!(
        open_files.split_whitespace().nth(3) == Some("300"),
        "{open_files}"
    );

    let address = server.url.trim_start_matches("http://").to_owned();
    // More idle sockets than the open-file limit allows.
    let mut idle = Vec::new();
    for _ in 0..320 {
        match TcpStream::connect(&address) {
            Ok(stream) => idle.push(stream),
            Err(error) => panic!("cannot connect: {error}"),
        }
    }
    // Each is answered 503 with a JSON body (past the cap), or closed by the server once
    // the header timeout passes (idle): none is left hanging.
    let started = Instant::now();
    let mut refused = 0;
    let mut closed = 0;
    for stream in &mut idle {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut bytes = Vec::new();
        match stream.read_to_end(&mut bytes) {
            Ok(_) if bytes.is_empty() => closed += 1,
            Ok(_) => {
                let text = String::from_utf8(bytes).unwrap();
                let (head, body) = text.split_once("\r\n\r\n").unwrap();
                assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
                let body: Value = serde_json::from_str(body).unwrap();
                assert_warg_error(503, &body, 503);
                refused += 1;
            }
            Err(error) => panic!("a connection was left open: {error}"),
        }
    }
    assert!(closed >= 64, "only {closed} idle connections");
    assert!(refused >= 100, "only {refused} refused");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(idle);
    // And the registry serves again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match server.client().checkpoint() {
            Ok(_) => break,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "no service after the flood: {error}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    assert!(
        server.log().contains("too many open connections"),
        "{}",
        server.log()
    );
}

// ---------------------------------------------------------------------------------------
// Records.

#[test]
fn a_record_replayed_under_another_name_is_refused() {
    let data = temp_dir("harden-replay");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let mut owner = Publisher::new("example:original");
    let init = owner.init();
    let (status, _) = client.publish(&owner.name, &init);
    assert_eq!(status, 202);
    client.wait(&owner.name, init.record_id());

    let copy: cairn_protocol::PackageName = "example:copy".parse().unwrap();
    let (status, body) = client.publish(&copy, &init);
    assert_eq!(status, 409, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("example:original"), "{message}");
    assert!(message.contains("example:copy"), "{message}");
    // No package was made under the new name.
    let checkpoint = server.wait_for_checkpoint(2);
    let response = client.post_json(
        "v1/fetch/logs",
        &json!({"logLength": checkpoint.contents.log_length, "packages": {copy.log_id().to_string(): null}}),
    );
    assert_eq!(response.status(), 404);
}

#[test]
fn a_record_time_rfc3339_cannot_write_is_refused() {
    let data = temp_dir("harden-time");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let publisher = Publisher::new("example:future");
    for seconds in [Timestamp::LATEST_RFC3339 + 1, i64::MAX] {
        let record = Record {
            prev: None,
            version: 0,
            time: Timestamp { seconds, nanos: 0 },
            entries: vec![PackageEntry::Init {
                key: publisher.key.public_key().clone(),
                hash_algorithm: cairn_protocol::HashAlgorithm::Sha256,
            }],
        };
        let envelope = Envelope::signed(record, &publisher.key);
        let (status, body) = client.publish(&publisher.name, &envelope);
        assert_warg_error(status.as_u16(), &body, 400);
        assert!(
            body["message"].as_str().unwrap().contains("RFC 3339"),
            "{body}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Error bodies.

#[test]
fn every_error_answer_has_a_json_body() {
    let data = temp_dir("harden-json");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    // No connection is reused: the server closes one whose request body it did not read.
    let http = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", server.url);
    let digest = format!("sha256:{}", "ab".repeat(32));
    let warg_cases: Vec<(reqwest::blocking::RequestBuilder, u16)> = vec![
        (http.get(url("/no/such/page")), 404),
        (http.get(url("/")), 404),
        (http.delete(url("/v1/fetch/checkpoint")), 405),
        (http.post(url("/v1/fetch/checkpoint")), 405),
        (http.get(url("/v1/proof/inclusion")), 405),
        (
            http.get(url("/v1/package/not-a-log-id/record/nor-a-record")),
            400,
        ),
        (http.get(url("/v1/cairn/blobs/not-a-digest")), 400),
        (
            http.post(url(&format!(
                "/v1/package/{digest}/record/{digest}/content/{digest}/manifest"
            )))
            .body(vec![b' '; 3 << 20]),
            // The record is checked before the body is read.
            404,
        ),
        (
            http.post(url("/v1/fetch/logs"))
                .header("content-type", "application/json")
                .body(vec![b' '; 3 << 20]),
            413,
        ),
        (
            http.get(url("/v1/fetch/checkpoint"))
                .header("warg-registry", "elsewhere.example"),
            501,
        ),
        (
            http.post(url("/v1/fetch/logs"))
                .header("content-type", "text/plain")
                .body("{}"),
            415,
        ),
    ];
    for (request, expected) in warg_cases {
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let what = response.url().path().to_owned();
        let content_type = header(&response, "content-type");
        assert_eq!(content_type, "application/json", "{what}");
        let body: Value = response.json().unwrap();
        assert_eq!(status, expected, "{what}: {body}");
        assert_eq!(body["status"], expected, "{what}: {body}");
        // A message, or a typed error naming what was not found.
        assert!(
            body["message"].is_string() || body["type"].is_string(),
            "{what}: {body}"
        );
    }
    // What hyper refuses before any handler runs (a URL over 64 KiB, a request line that is
    // not HTTP, headers over its buffer) gets a JSON body too.
    let long_url = format!(
        "GET /v1/{} HTTP/1.1\r\nhost: test\r\n\r\n",
        "a".repeat(70_000)
    );
    let huge_headers = format!(
        "GET /v1/fetch/checkpoint HTTP/1.1\r\nhost: test\r\n{}\r\n",
        (0..100)
            .map(|i| format!("x-filler-{i}: {}\r\n", "b".repeat(8000)))
            .collect::<String>()
    );
    for (request, expected) in [
        (long_url, 414),
        ("NOT HTTP AT ALL\r\n\r\n".to_owned(), 400),
        (huge_headers, 431),
    ] {
        let address = server.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // The server may answer and close before it has read everything.
        let _ = stream.write_all(request.as_bytes());
        let (status, body) = read_answer(&mut stream).expect("an answer");
        assert_eq!(status, expected, "{body}");
        assert_eq!(body["status"], expected, "{body}");
        assert!(body["message"].is_string(), "{body}");
        assert!(body["errors"][0]["code"].is_string(), "{body}");
    }
    // Under /v2/, the distribution spec's error body.
    for (request, expected) in [
        (http.get(url("/v2/no/such/thing/here")), 404),
        (http.post(url("/v2/_catalog")), 405),
        (http.patch(url("/v2/example/x/tags/list")), 405),
    ] {
        let response = request.send().unwrap();
        assert_eq!(response.status().as_u16(), expected);
        let body: Value = response.json().unwrap();
        assert!(body["errors"][0]["code"].is_string(), "{body}");
        assert!(body["errors"][0]["message"].is_string(), "{body}");
    }
}

// ---------------------------------------------------------------------------------------
// A full disk.

/// A tmpfs of `size` mounted at a new folder, unmounted when dropped; `None` (with a note)
/// where this process may not mount, unless CI is set, where that is a failure.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(name: &str, size: &str) -> Option<SmallDisk> {
        let path = temp_dir(name);
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(SmallDisk { path }),
            other => {
                let why = match other {
                    Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
                    Err(error) => error.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI: cannot mount a tmpfs for the full-disk test (run as root): {why}"
                );
                eprintln!("SKIPPED: the full-disk test needs to mount a tmpfs (root): {why}");
                None
            }
        }
    }

    /// Fills the disk with a file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0xa5u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(28) => break,
                Err(error) => panic!("filling the disk: {error}"),
            }
        }
        // The last partial page, byte by byte.
        while file.write(&[0]).is_ok_and(|n| n == 1) {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

#[test]
fn a_full_disk_fails_requests_not_the_server_which_resumes_when_there_is_room() {
    let Some(disk) = SmallDisk::mount("harden-full-disk", "24m") else {
        return;
    };
    let data = disk.path.join("data");
    let mut server = TestServer::start(
        &data,
        &["--namespace", "example", "--checkpoint-interval", "50ms"],
    );
    let client = server.client();
    let mut first = Publisher::new("example:first");
    first.publish_init(&client);
    let content = fixture("b01-fac.component.wasm");
    first.publish_release(&client, "1.0.0", &content);

    let filler = disk.fill();
    // Publishing goes on until writes find no room; each answer is 202 or a 507 with a
    // JSON body.
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..300 {
        let mut publisher = Publisher::new(&format!("example:p{i}"));
        let init = publisher.init();
        let (status, body) = client.publish(&publisher.name, &init);
        match status.as_u16() {
            202 => accepted.push((publisher.name, *init.record_id())),
            507 => {
                assert_warg_error(507, &body, 507);
                refused += 1;
            }
            other => panic!("publish answered {other}: {body}"),
        }
    }
    assert!(refused > 0, "no publish was refused on a full disk");
    // An upload has no room either.
    let calc = fixture("b03-rs-calc.wac.component.wasm");
    let release = first.release("2.0.0", &calc);
    let (status, body) = client.publish(&first.name, &release);
    if status == 202 {
        let status = client.upload(&first.name, release.record_id(), &calc);
        assert_eq!(status, 507);
    } else {
        assert_warg_error(status.as_u16(), &body, 507);
    }
    // Reads go on, and the server is alive.
    assert!(client.checkpoint().is_ok());
    let digest = Digest::of(&content);
    let response = client.get(&format!("content/sha256-{}", &digest.to_string()[7..]));
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().unwrap().as_ref(), &content[..]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "{}",
        server.log()
    );

    // Room again: what was accepted is published, and publishing works.
    std::fs::remove_file(filler).unwrap();
    for (name, record_id) in &accepted {
        let state = client.wait(name, record_id);
        assert!(
            matches!(state, cairn_protocol::api::RecordState::Published { .. }),
            "{state:?}"
        );
    }
    let mut last = Publisher::new("example:after");
    last.publish_init(&client);
    first.head = Some(*release.record_id());
    let (status, body) = client.publish(&first.name, &release);
    assert_eq!(status, 202, "{body}");
    if body["state"] == "sourcing" {
        assert_eq!(client.upload(&first.name, release.record_id(), &calc), 201);
    }
    let state = client.wait(&first.name, release.record_id());
    assert!(
        matches!(state, cairn_protocol::api::RecordState::Published { .. }),
        "{state:?}"
    );
    assert_eq!(files_in(&data.join("uploads/tmp")), 0);
    eprintln!(
        "{} accepted and {refused} refused on the full disk; log:\n{}",
        accepted.len(),
        server.log()
    );
    assert!(server.stop().success());
}

// ---------------------------------------------------------------------------------------
// Content no record publishes.

/// `bytes` (a component) with a custom section appended: the same modules, another file.
fn with_custom_section(bytes: &[u8], name: &str) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let payload = [&[name.len() as u8][..], name.as_bytes(), b"payload"].concat();
    out.push(0);
    out.push(payload.len() as u8);
    out.extend_from_slice(&payload);
    out
}

fn blob_status(client: &Client, digest: &cairn_split::BlobId) -> u16 {
    client
        .get(&format!("v1/cairn/blobs/{digest}"))
        .status()
        .as_u16()
}

/// Whether the content store (a directory) holds `digest`, as it is or compressed.
fn blob_stored(server: &TestServer, digest: &cairn_split::BlobId) -> bool {
    let hex = &digest.to_string()[7..];
    let dir = server.data.join("content/blobs/sha256");
    dir.join(hex).is_file() || dir.join(format!("{hex}.zst")).is_file()
}

#[test]
fn content_uploaded_for_records_never_published_is_removed() {
    let data = temp_dir("harden-abandoned");
    let server = TestServer::start(
        &data,
        &["--namespace", "example", "--upload-deadline", "1s"],
    );
    let client = server.client();
    let mut publisher = Publisher::new("example:kept");
    publisher.publish_init(&client);
    let kept = fixture("b01-fac.component.wasm");
    publisher.publish_release(&client, "1.0.0", &kept);
    let kept_split = cairn_split::split(&kept).unwrap();

    // A second 1.0.0: accepted, its content uploaded and stored, then rejected by the
    // sequencer. Its file shares every module with the first and differs in its skeleton.
    let abandoned = with_custom_section(&kept, "abandoned");
    let abandoned_split = cairn_split::split(&abandoned).unwrap();
    let own_blob = abandoned_split.manifest().root().digest;
    assert_ne!(own_blob, kept_split.manifest().root().digest);
    let record = publisher.release("1.0.0", &abandoned);
    let (status, body) = client.publish(&publisher.name, &record);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "sourcing", "{body}");
    assert_eq!(
        client.upload(&publisher.name, record.record_id(), &abandoned),
        201
    );
    assert!(matches!(
        client.wait(&publisher.name, record.record_id()),
        cairn_protocol::api::RecordState::Rejected { .. }
    ));
    // Never readable, and removed once the sweep finds that no record can publish it.
    let digest = Digest::of(&abandoned);
    assert_eq!(client.get(&format!("v1/content/{digest}")).status(), 404);
    assert_eq!(blob_status(&client, &own_blob), 404);
    let deadline = Instant::now() + Duration::from_secs(10);
    while blob_stored(&server, &own_blob) {
        assert!(
            Instant::now() < deadline,
            "the abandoned content's blob is still stored"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // What it shared with published content stays, and that content is whole.
    for blob in kept_split.manifest().blobs() {
        assert!(blob_stored(&server, &blob.digest), "{}", blob.digest);
        assert_eq!(blob_status(&client, &blob.digest), 200, "{}", blob.digest);
    }
    let response = client.get(&format!(
        "content/sha256-{}",
        &Digest::of(&kept).to_string()[7..]
    ));
    assert_eq!(response.bytes().unwrap().as_ref(), &kept[..]);
    assert!(server
        .log()
        .contains("removed content uploaded for records that were not published"));

    // A record waiting for two contents, given one: past the deadline that one is removed
    // and the record waits for both again.
    publisher.head = Some(*record.record_id());
    let mut fresh = Publisher::new("example:waiting");
    fresh.publish_init(&client);
    let first = with_custom_section(&kept, "first");
    let second = with_custom_section(&kept, "second");
    let record = fresh.sign(vec![
        PackageEntry::Release {
            version: "2.0.0".parse().unwrap(),
            content: Digest::of(&first),
        },
        PackageEntry::Release {
            version: "3.0.0".parse().unwrap(),
            content: Digest::of(&second),
        },
    ]);
    let (status, body) = client.publish(&fresh.name, &record);
    assert_eq!(status, 202, "{body}");
    assert_eq!(client.upload(&fresh.name, record.record_id(), &first), 201);
    let first_blob = cairn_split::split(&first).unwrap().manifest().root().digest;
    assert!(blob_stored(&server, &first_blob));
    assert_eq!(blob_status(&client, &first_blob), 404);
    let deadline = Instant::now() + Duration::from_secs(10);
    while blob_stored(&server, &first_blob) {
        assert!(
            Instant::now() < deadline,
            "content of a record that never completed is still stored"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let state: Value = client
        .get(&format!(
            "v1/package/{}/record/{}",
            fresh.name.log_id(),
            record.record_id()
        ))
        .json()
        .unwrap();
    assert_eq!(state["state"], "sourcing", "{state}");
    let missing = state["missingContent"].as_object().unwrap();
    assert!(
        missing.contains_key(&Digest::of(&first).to_string()),
        "{state}"
    );
    assert!(
        missing.contains_key(&Digest::of(&second).to_string()),
        "{state}"
    );
    // Both uploaded now: published, and both contents are whole.
    assert_eq!(client.upload(&fresh.name, record.record_id(), &first), 201);
    assert_eq!(client.upload(&fresh.name, record.record_id(), &second), 201);
    assert!(matches!(
        client.wait(&fresh.name, record.record_id()),
        cairn_protocol::api::RecordState::Published { .. }
    ));
    std::thread::sleep(Duration::from_millis(1500));
    for bytes in [&first, &second] {
        let hex = &Digest::of(bytes).to_string()[7..];
        let response = client.get(&format!("content/sha256-{hex}"));
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().unwrap().as_ref(), &bytes[..]);
    }
}

#[test]
fn content_waiting_for_its_record_counts_against_the_pending_cap() {
    let data = temp_dir("harden-pending-content");
    let server = TestServer::start(
        &data,
        &[
            "--namespace",
            "example",
            "--upload-deadline",
            "1s",
            "--max-pending-uploads",
            "400",
        ],
    );
    let client = server.client();
    let base = fixture("b01-fac.component.wasm");
    // A record waiting for two contents, given one (273 bytes, stored provisionally).
    let mut waiting = Publisher::new("example:waiting");
    waiting.publish_init(&client);
    let first = with_custom_section(&base, "first");
    let record = waiting.sign(vec![
        PackageEntry::Release {
            version: "1.0.0".parse().unwrap(),
            content: Digest::of(&first),
        },
        PackageEntry::Release {
            version: "2.0.0".parse().unwrap(),
            content: Digest::of(&base),
        },
    ]);
    assert_eq!(client.publish(&waiting.name, &record).0, 202);
    assert_eq!(
        client.upload(&waiting.name, record.record_id(), &first),
        201
    );
    // Another upload would pass the cap while that one waits.
    let mut other = Publisher::new("example:other");
    other.publish_init(&client);
    let second = with_custom_section(&base, "second");
    let release = other.release("1.0.0", &second);
    assert_eq!(client.publish(&other.name, &release).0, 202);
    assert_eq!(
        client.upload(&other.name, release.record_id(), &second),
        507
    );
    // Once the waiting content is removed (past the deadline), there is room.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.upload(&other.name, release.record_id(), &second) == 507 {
        assert!(Instant::now() < deadline, "no room after the deadline");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(matches!(
        client.wait(&other.name, release.record_id()),
        cairn_protocol::api::RecordState::Published { .. }
    ));
}
