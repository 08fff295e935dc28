//! `cairn serve` over real HTTP on loopback, through the OCI distribution API v1.1, push
//! side: credentials, every kind of blob upload, mounts, manifests by tag and digest,
//! subjects and referrers, deletes, warg package repositories refused, restarts.
//! (`oras` is not tested: only its Python library is obtainable here, not the CLI.)

mod support;

use reqwest::blocking::{RequestBuilder, Response};
use serde_json::Value;
use sha2::Digest as _;
use support::*;

const TOKEN: &str = "secret";
const REPO: &str = "scratch/hello";

fn start(name: &str) -> TestServer {
    let data = temp_dir(name);
    TestServer::start(
        &data,
        &["--namespace", "example", "--oci-push-token", TOKEN],
    )
}

/// A request with the bearer credential.
fn authed(server: &TestServer, method: reqwest::Method, path: &str) -> RequestBuilder {
    server
        .client()
        .http
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(TOKEN)
}

fn get(server: &TestServer, path: &str) -> Response {
    server
        .client()
        .http
        .get(format!("{}{path}", server.url))
        .send()
        .unwrap()
}

/// Pushes `bytes` as a blob of `repo` with a single POST.
fn push_blob(server: &TestServer, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let response = authed(
        server,
        reqwest::Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
    )
    .body(bytes.to_vec())
    .send()
    .unwrap();
    assert_eq!(response.status(), 201);
    digest
}

fn image_manifest(config: &[u8], layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.example.config+json", "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha256(layer), "size": layer.len()}],
    }))
    .unwrap()
}

fn put_manifest(server: &TestServer, repo: &str, reference: &str, bytes: &[u8]) -> Response {
    authed(
        server,
        reqwest::Method::PUT,
        &format!("/v2/{repo}/manifests/{reference}"),
    )
    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
    .body(bytes.to_vec())
    .send()
    .unwrap()
}

/// A 401 with the push challenge.
fn response_challenge(server: &TestServer) -> Response {
    let response = server
        .client()
        .http
        .post(format!("{}/v2/{REPO}/blobs/uploads/", server.url))
        .send()
        .unwrap();
    assert_eq!(response.status(), 401);
    response
}

/// Closes the upload at `location` with the digest of `whole` (no last chunk) and checks
/// the repository then serves exactly `whole`.
fn close_upload(server: &TestServer, location: &str, whole: &[u8]) {
    let done = authed(
        server,
        reqwest::Method::PUT,
        &format!("{location}?digest={}", sha256(whole)),
    )
    .send()
    .unwrap();
    assert_eq!(done.status(), 201);
    assert_eq!(
        get(server, &format!("/v2/{REPO}/blobs/{}", sha256(whole)))
            .bytes()
            .unwrap()
            .to_vec(),
        whole
    );
}

#[test]
fn pushes_need_the_configured_credential() {
    let server = start("push-auth");
    let http = &server.client().http;
    let url = format!("{}/v2/{REPO}/blobs/uploads/", server.url);
    let response = http.post(&url).send().unwrap();
    assert!(header(&response, "www-authenticate").starts_with("Bearer realm="));
    assert_error(response, 401, "UNAUTHORIZED");
    assert_error(
        http.post(&url).bearer_auth("wrong").send().unwrap(),
        401,
        "UNAUTHORIZED",
    );
    assert_error(
        http.post(&url)
            .basic_auth("anyone", Some("wrong"))
            .send()
            .unwrap(),
        401,
        "UNAUTHORIZED",
    );
    let ok = http
        .post(&url)
        .basic_auth("anyone", Some(TOKEN))
        .send()
        .unwrap();
    assert_eq!(ok.status(), 202);
    // The token flow: the challenge names a realm that trades the credential for a token.
    let challenge = header(&response_challenge(&server), "www-authenticate");
    let realm = challenge
        .split("realm=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(realm, format!("{}/v2/token", server.url));
    assert!(challenge.contains(&format!("scope=\"repository:{REPO}:pull,push\"")));
    // Without credentials, a pull-only token that cannot push.
    let anonymous: serde_json::Value = http.get(&realm).send().unwrap().json().unwrap();
    let anonymous = anonymous["token"].as_str().unwrap();
    assert_error(
        http.post(&url).bearer_auth(anonymous).send().unwrap(),
        401,
        "UNAUTHORIZED",
    );
    assert_error(
        http.get(&realm)
            .basic_auth("anyone", Some("wrong"))
            .send()
            .unwrap(),
        401,
        "UNAUTHORIZED",
    );
    let granted: serde_json::Value = http
        .get(&realm)
        .query(&[
            ("service", "cairn"),
            ("scope", "repository:scratch/hello:push"),
        ])
        .basic_auth("anyone", Some(TOKEN))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = granted["token"].as_str().unwrap();
    assert_eq!(granted["access_token"], token);
    let ok = http.post(&url).bearer_auth(token).send().unwrap();
    assert_eq!(ok.status(), 202);
    // Without the setting nothing can push.
    let data = temp_dir("push-auth-off");
    let closed = TestServer::start(&data, &["--namespace", "example"]);
    let response = closed
        .client()
        .http
        .post(format!("{}/v2/{REPO}/blobs/uploads/", closed.url))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_error(response, 401, "UNAUTHORIZED");
}

#[test]
fn blobs_are_pushed_monolithically_in_one_post_and_in_chunks() {
    let server = start("push-blobs");
    // POST then PUT.
    let bytes = b"monolithic blob".to_vec();
    let started = authed(
        &server,
        reqwest::Method::POST,
        &format!("/v2/{REPO}/blobs/uploads/"),
    )
    .send()
    .unwrap();
    assert_eq!(started.status(), 202);
    let location = header(&started, "location");
    assert!(!header(&started, "docker-upload-uuid").is_empty());
    let digest = sha256(&bytes);
    let done = authed(
        &server,
        reqwest::Method::PUT,
        &format!("{location}?digest={digest}"),
    )
    .body(bytes.clone())
    .send()
    .unwrap();
    assert_eq!(done.status(), 201);
    assert_eq!(header(&done, "docker-content-digest"), digest);
    assert_eq!(
        header(&done, "location"),
        format!("/v2/{REPO}/blobs/{digest}")
    );
    let pulled = get(&server, &format!("/v2/{REPO}/blobs/{digest}"));
    assert_eq!(pulled.status(), 200);
    assert_eq!(pulled.bytes().unwrap().to_vec(), bytes);

    // Single POST.
    let single = push_blob(&server, REPO, b"single post");
    assert_eq!(
        get(&server, &format!("/v2/{REPO}/blobs/{single}"))
            .bytes()
            .unwrap()
            .to_vec(),
        b"single post"
    );

    // Chunked, in two chunks, with an out-of-order chunk refused.
    let started = authed(
        &server,
        reqwest::Method::POST,
        &format!("/v2/{REPO}/blobs/uploads/"),
    )
    .send()
    .unwrap();
    let location = header(&started, "location");
    let first = authed(&server, reqwest::Method::PATCH, &location)
        .header("content-range", "0-4")
        .body(b"chunk".to_vec())
        .send()
        .unwrap();
    assert_eq!(first.status(), 202);
    assert_eq!(header(&first, "range"), "0-4");
    let location = header(&first, "location");
    let wrong = authed(&server, reqwest::Method::PATCH, &location)
        .header("content-range", "10-14")
        .body(b"wrong".to_vec())
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 416);
    let second = authed(&server, reqwest::Method::PATCH, &location)
        .header("content-range", "5-10")
        .body(b"ed-two".to_vec())
        .send()
        .unwrap();
    assert_eq!(second.status(), 202);
    assert_eq!(header(&second, "range"), "0-10");
    let status = authed(&server, reqwest::Method::GET, &location)
        .send()
        .unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(header(&status, "range"), "0-10");
    let whole = b"chunked-two".to_vec();
    close_upload(&server, &location, &whole);

    // A wrong digest, an invalid digest, a sha512 digest of other bytes.
    assert_error(
        authed(
            &server,
            reqwest::Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/?digest={}", sha256(b"other")),
        )
        .body(b"mismatch".to_vec())
        .send()
        .unwrap(),
        400,
        "DIGEST_INVALID",
    );
    assert_error(
        authed(
            &server,
            reqwest::Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/?digest=sha256:nothex"),
        )
        .body(b"x".to_vec())
        .send()
        .unwrap(),
        400,
        "DIGEST_INVALID",
    );
    assert_error(
        authed(
            &server,
            reqwest::Method::POST,
            &format!(
                "/v2/{REPO}/blobs/uploads/?digest=sha512:{}",
                "ab".repeat(64)
            ),
        )
        .body(b"x".to_vec())
        .send()
        .unwrap(),
        400,
        "DIGEST_INVALID",
    );

    // A cancelled upload is gone.
    let started = authed(
        &server,
        reqwest::Method::POST,
        &format!("/v2/{REPO}/blobs/uploads/"),
    )
    .send()
    .unwrap();
    let location = header(&started, "location");
    let cancelled = authed(&server, reqwest::Method::DELETE, &location)
        .send()
        .unwrap();
    assert_eq!(cancelled.status(), 204);
    assert_error(
        authed(&server, reqwest::Method::GET, &location)
            .send()
            .unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
}

#[test]
fn blobs_mount_across_repositories() {
    let server = start("push-mount");
    let digest = push_blob(&server, REPO, b"shared layer");
    assert_eq!(
        get(&server, &format!("/v2/scratch/other/blobs/{digest}")).status(),
        404
    );
    let mounted = authed(
        &server,
        reqwest::Method::POST,
        &format!("/v2/scratch/other/blobs/uploads/?mount={digest}&from={REPO}"),
    )
    .send()
    .unwrap();
    assert_eq!(mounted.status(), 201);
    assert_eq!(
        get(&server, &format!("/v2/scratch/other/blobs/{digest}"))
            .bytes()
            .unwrap()
            .to_vec(),
        b"shared layer"
    );
    // Not readable from `from`: a normal upload starts.
    let missing = sha256(b"nowhere");
    let fallback = authed(
        &server,
        reqwest::Method::POST,
        &format!("/v2/scratch/other/blobs/uploads/?mount={missing}&from={REPO}"),
    )
    .send()
    .unwrap();
    assert_eq!(fallback.status(), 202);
    assert!(header(&fallback, "location").contains("/blobs/uploads/"));
}

#[test]
fn manifests_are_pushed_pulled_listed_and_deleted() {
    let server = start("push-manifests");
    let config = b"{\"kind\":\"example\"}".to_vec();
    let layer = b"layer bytes".to_vec();
    let manifest = image_manifest(&config, &layer);
    // Blobs first, or the manifest is refused.
    assert_error(
        put_manifest(&server, REPO, "v1", &manifest),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    push_blob(&server, REPO, &config);
    push_blob(&server, REPO, &layer);
    let pushed = put_manifest(&server, REPO, "v1", &manifest);
    assert_eq!(pushed.status(), 201);
    let digest = sha256(&manifest);
    assert_eq!(header(&pushed, "docker-content-digest"), digest);
    assert_eq!(
        header(&pushed, "location"),
        format!("/v2/{REPO}/manifests/{digest}")
    );
    for reference in ["v1", digest.as_str()] {
        let pulled = get(&server, &format!("/v2/{REPO}/manifests/{reference}"));
        assert_eq!(pulled.status(), 200);
        assert_eq!(
            header(&pulled, "content-type"),
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(header(&pulled, "docker-content-digest"), digest);
        assert_eq!(pulled.bytes().unwrap().to_vec(), manifest);
    }
    let tags: Value = get(&server, &format!("/v2/{REPO}/tags/list"))
        .json()
        .unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
    let catalog: Value = get(&server, "/v2/_catalog").json().unwrap();
    assert!(catalog["repositories"]
        .as_array()
        .unwrap()
        .contains(&Value::from(REPO)));
    // A digest reference must match the bytes.
    assert_error(
        put_manifest(&server, REPO, &sha256(b"not it"), &manifest),
        400,
        "DIGEST_INVALID",
    );
    // Deleting a tag removes the tag only; deleting by digest removes the manifest.
    let untagged = authed(
        &server,
        reqwest::Method::DELETE,
        &format!("/v2/{REPO}/manifests/v1"),
    )
    .send()
    .unwrap();
    assert_eq!(untagged.status(), 202);
    assert_error(
        get(&server, &format!("/v2/{REPO}/manifests/v1")),
        404,
        "MANIFEST_UNKNOWN",
    );
    assert_eq!(
        get(&server, &format!("/v2/{REPO}/manifests/{digest}")).status(),
        200
    );
    assert_eq!(put_manifest(&server, REPO, "v1", &manifest).status(), 201);
    let deleted = authed(
        &server,
        reqwest::Method::DELETE,
        &format!("/v2/{REPO}/manifests/{digest}"),
    )
    .send()
    .unwrap();
    assert_eq!(deleted.status(), 202);
    assert_error(
        get(&server, &format!("/v2/{REPO}/manifests/{digest}")),
        404,
        "MANIFEST_UNKNOWN",
    );
    assert_error(
        get(&server, &format!("/v2/{REPO}/manifests/v1")),
        404,
        "MANIFEST_UNKNOWN",
    );
    // Blob delete.
    let blob = sha256(&layer);
    let deleted = authed(
        &server,
        reqwest::Method::DELETE,
        &format!("/v2/{REPO}/blobs/{blob}"),
    )
    .send()
    .unwrap();
    assert_eq!(deleted.status(), 202);
    assert_error(
        get(&server, &format!("/v2/{REPO}/blobs/{blob}")),
        404,
        "BLOB_UNKNOWN",
    );
}

#[test]
fn a_manifest_with_a_subject_is_a_referrer() {
    let server = start("push-referrers");
    let config = b"{}".to_vec();
    let layer = b"subject layer".to_vec();
    push_blob(&server, REPO, &config);
    push_blob(&server, REPO, &layer);
    let subject = image_manifest(&config, &layer);
    assert_eq!(put_manifest(&server, REPO, "base", &subject).status(), 201);
    let subject_digest = sha256(&subject);
    let signature = b"a signature".to_vec();
    push_blob(&server, REPO, &signature);
    let artifact = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(&config), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha256(&signature), "size": signature.len()}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject_digest, "size": subject.len()},
        "annotations": {"org.example": "yes"},
    }))
    .unwrap();
    let pushed = put_manifest(&server, REPO, &sha256(&artifact), &artifact);
    assert_eq!(pushed.status(), 201);
    assert_eq!(header(&pushed, "oci-subject"), subject_digest);
    let index: Value = get(&server, &format!("/v2/{REPO}/referrers/{subject_digest}"))
        .json()
        .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], sha256(&artifact));
    assert_eq!(entry["artifactType"], "application/vnd.example.signature");
    assert_eq!(entry["annotations"]["org.example"], "yes");
    let filtered = get(
        &server,
        &format!(
            "/v2/{REPO}/referrers/{subject_digest}?artifactType=application/vnd.example.signature"
        ),
    );
    assert_eq!(header(&filtered, "oci-filters-applied"), "artifactType");
    let filtered: Value = filtered.json().unwrap();
    assert_eq!(filtered["manifests"].as_array().unwrap().len(), 1);
    let other: Value = get(
        &server,
        &format!("/v2/{REPO}/referrers/{subject_digest}?artifactType=application/other"),
    )
    .json()
    .unwrap();
    assert!(other["manifests"].as_array().unwrap().is_empty());
}

#[test]
fn warg_package_repositories_refuse_pushes() {
    let server = start("push-warg");
    let client = server.client();
    let mut publisher = Publisher::new("example:fac");
    publisher.publish_init(&client);
    publisher.publish_release(&client, "1.0.0", &fixture("b01-fac.component.wasm"));
    assert_error(
        authed(
            &server,
            reqwest::Method::POST,
            "/v2/example/fac/blobs/uploads/",
        )
        .send()
        .unwrap(),
        403,
        "DENIED",
    );
    assert_error(
        put_manifest(&server, "example/fac", "2.0.0", b"{}"),
        403,
        "DENIED",
    );
    assert_error(
        authed(
            &server,
            reqwest::Method::DELETE,
            "/v2/example/fac/manifests/1.0.0",
        )
        .send()
        .unwrap(),
        403,
        "DENIED",
    );
    assert_eq!(
        get(&server, "/v2/example/fac/manifests/1.0.0").status(),
        200
    );
}

#[test]
fn pushed_repositories_survive_a_restart() {
    let data = temp_dir("push-restart");
    let args = ["--namespace", "example", "--oci-push-token", TOKEN];
    let server = TestServer::start(&data, &args);
    let config = b"{\"restart\":true}".to_vec();
    let layer = b"persistent layer".to_vec();
    push_blob(&server, REPO, &config);
    push_blob(&server, REPO, &layer);
    let manifest = image_manifest(&config, &layer);
    assert_eq!(put_manifest(&server, REPO, "kept", &manifest).status(), 201);
    assert!(server.stop().success());
    let server = TestServer::start(&data, &args);
    let pulled = get(&server, &format!("/v2/{REPO}/manifests/kept"));
    assert_eq!(pulled.status(), 200);
    assert_eq!(pulled.bytes().unwrap().to_vec(), manifest);
    assert_eq!(
        get(&server, &format!("/v2/{REPO}/blobs/{}", sha256(&layer)))
            .bytes()
            .unwrap()
            .to_vec(),
        layer
    );
    let catalog: Value = get(&server, "/v2/_catalog").json().unwrap();
    assert!(catalog["repositories"]
        .as_array()
        .unwrap()
        .contains(&Value::from(REPO)));
}

/// Starts an upload session of `repo` and returns its location.
fn start_session(server: &TestServer, repo: &str) -> String {
    let started = authed(
        server,
        reqwest::Method::POST,
        &format!("/v2/{repo}/blobs/uploads/"),
    )
    .send()
    .unwrap();
    assert_eq!(started.status(), 202);
    header(&started, "location")
}

/// Sends `method path` over a raw connection announcing a body of `declared` bytes, sends
/// only the first 256 KiB of it, and returns the status the server answers with within
/// 10 seconds (none if it waits for the rest of the body).
fn status_before_the_body(
    server: &TestServer,
    method: &str,
    path: &str,
    declared: u64,
) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let address = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {declared}\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&vec![0u8; 256 << 10]).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    let line = String::from_utf8_lossy(&answer).into_owned();
    line.split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
}

#[test]
fn unauthenticated_pushes_are_refused_before_their_body_is_read() {
    let server = start("push-auth-first");
    let declared = 64 << 20;
    let single = format!("/v2/{REPO}/blobs/uploads/?digest={}", sha256(b"x"));
    assert_eq!(
        status_before_the_body(&server, "POST", &single, declared),
        Some(401)
    );
    let location = start_session(&server, REPO);
    assert_eq!(
        status_before_the_body(&server, "PATCH", &location, declared),
        Some(401)
    );
    let closing = format!("{location}?digest={}", sha256(b"x"));
    assert_eq!(
        status_before_the_body(&server, "PUT", &closing, declared),
        Some(401)
    );
    assert_eq!(
        status_before_the_body(
            &server,
            "PUT",
            &format!("/v2/{REPO}/manifests/v1"),
            declared
        ),
        Some(401)
    );
    // The session is untouched.
    let status = authed(&server, reqwest::Method::GET, &location)
        .send()
        .unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(header(&status, "range"), "0-0");
}

#[test]
fn a_chunk_past_the_size_limit_is_413_and_leaves_the_session_as_it_was() {
    let data = temp_dir("push-size-limit");
    let server = TestServer::start(
        &data,
        &[
            "--namespace",
            "example",
            "--oci-push-token",
            TOKEN,
            "--max-content-size",
            "64KiB",
        ],
    );
    let location = start_session(&server, REPO);
    let first = vec![1u8; 40 << 10];
    let patch = |bytes: Vec<u8>| {
        authed(&server, reqwest::Method::PATCH, &location)
            .body(bytes)
            .send()
            .unwrap()
    };
    assert_eq!(patch(first.clone()).status(), 202);
    // Over the limit with the session, and over it on its own (streamed, no length).
    assert_error(patch(vec![2u8; 40 << 10]), 413, "SIZE_INVALID");
    let streamed = reqwest::blocking::Body::new(std::io::Cursor::new(vec![3u8; 100 << 10]));
    assert_error(
        authed(&server, reqwest::Method::PATCH, &location)
            .body(streamed)
            .send()
            .unwrap(),
        413,
        "SIZE_INVALID",
    );
    let status = authed(&server, reqwest::Method::GET, &location)
        .send()
        .unwrap();
    assert_eq!(header(&status, "range"), format!("0-{}", first.len() - 1));
    // A chunk that fits goes on from where the upload was.
    let second = vec![4u8; 24 << 10];
    let appended = patch(second.clone());
    assert_eq!(appended.status(), 202);
    assert_eq!(header(&appended, "range"), format!("0-{}", (64 << 10) - 1));
    let whole = [first, second].concat();
    close_upload(&server, &location, &whole);
    // A single POST over the limit is 413 too, and leaves no file behind.
    let large = vec![5u8; 65 << 10];
    assert_error(
        authed(
            &server,
            reqwest::Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/?digest={}", sha256(&large)),
        )
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(large)))
        .send()
        .unwrap(),
        413,
        "SIZE_INVALID",
    );
    let uploads = data.join("content/tmp/oci-uploads");
    let left: Vec<_> = std::fs::read_dir(&uploads)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn concurrent_chunks_at_one_offset_are_appended_once() {
    let server = start("push-concurrent");
    let location = start_session(&server, REPO);
    let chunk = 256 << 10;
    let writers = 6u8;
    let mut whole = Vec::new();
    for round in 0..4u64 {
        let start = round * chunk as u64;
        let range = format!("{start}-{}", start + chunk as u64 - 1);
        let barrier = std::sync::Barrier::new(usize::from(writers));
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..writers)
                .map(|writer| {
                    let (server, location, range, barrier) = (&server, &location, &range, &barrier);
                    scope.spawn(move || {
                        let request = authed(server, reqwest::Method::PATCH, location)
                            .header("content-range", range.as_str())
                            .body(vec![writer; chunk]);
                        barrier.wait();
                        request.send().unwrap().status().as_u16()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<u8> = (0..writers)
            .filter(|w| statuses[usize::from(*w)] == 202)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {statuses:?}");
        assert!(
            statuses.iter().all(|s| *s == 202 || *s == 416),
            "{statuses:?}"
        );
        whole.extend(vec![winners[0]; chunk]);
    }
    close_upload(&server, &location, &whole);
}

#[test]
fn a_closing_put_with_a_wrong_digest_can_be_retried() {
    let server = start("push-retry-put");
    let location = start_session(&server, REPO);
    let patched = authed(&server, reqwest::Method::PATCH, &location)
        .body(b"first half, ".to_vec())
        .send()
        .unwrap();
    assert_eq!(patched.status(), 202);
    let last = b"second half".to_vec();
    assert_error(
        authed(
            &server,
            reqwest::Method::PUT,
            &format!("{location}?digest={}", sha256(b"something else")),
        )
        .body(last.clone())
        .send()
        .unwrap(),
        400,
        "DIGEST_INVALID",
    );
    let status = authed(&server, reqwest::Method::GET, &location)
        .send()
        .unwrap();
    assert_eq!(header(&status, "range"), "0-11");
    let whole = b"first half, second half".to_vec();
    let done = authed(
        &server,
        reqwest::Method::PUT,
        &format!("{location}?digest={}", sha256(&whole)),
    )
    .body(last)
    .send()
    .unwrap();
    assert_eq!(done.status(), 201);
    assert_eq!(
        get(&server, &format!("/v2/{REPO}/blobs/{}", sha256(&whole)))
            .bytes()
            .unwrap()
            .to_vec(),
        whole
    );
}

#[test]
fn a_manifest_cannot_name_a_fragment_only_the_split_store_holds() {
    let server = start("push-fragment");
    let client = server.client();
    let component = fixture("b01-fac.component.wasm");
    let mut publisher = Publisher::new("example:fac");
    publisher.publish_init(&client);
    publisher.publish_release(&client, "1.0.0", &component);
    let split = client
        .get(&format!(
            "v1/cairn/content/{}/manifest",
            cairn_protocol::Digest::of(&component)
        ))
        .bytes()
        .unwrap();
    let split = cairn_split::Manifest::from_json(&split).unwrap();
    let fragment = split.blobs()[0].digest.to_string();
    let config = b"{}".to_vec();
    push_blob(&server, REPO, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(&config), "size": 2},
        "layers": [{"mediaType": "application/wasm", "digest": fragment, "size": split.blobs()[0].size}],
    }))
    .unwrap();
    assert_error(
        put_manifest(&server, REPO, "v1", &manifest),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    assert_error(
        get(&server, &format!("/v2/{REPO}/blobs/{fragment}")),
        404,
        "BLOB_UNKNOWN",
    );
    // A blob another scratch repository holds may be named, as an anonymous mount may.
    let layer = b"held elsewhere".to_vec();
    push_blob(&server, "scratch/other", &layer);
    assert_eq!(
        put_manifest(&server, REPO, "v2", &image_manifest(&config, &layer)).status(),
        201
    );
}

/// HMAC-SHA256, written out so that the test checks the server's construction.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = sha2::Sha256::digest([pad(0x36), message.to_vec()].concat());
    sha2::Sha256::digest([pad(0x5c), inner.to_vec()].concat()).to_vec()
}

/// A push token as the token endpoint derives it from the credential.
fn derived_token(credential: &str, expiry: u64) -> String {
    use base64::Engine as _;
    let mac = hmac_sha256(
        credential.as_bytes(),
        format!("cairn oci token v1{expiry}").as_bytes(),
    );
    format!(
        "cairn1.{expiry}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
    )
}

#[test]
fn the_token_endpoint_issues_expiring_tokens_not_the_credential() {
    let server = start("push-token");
    let http = &server.client().http;
    let realm = format!("{}/v2/token", server.url);
    let url = format!("{}/v2/{REPO}/blobs/uploads/", server.url);
    let granted: Value = http
        .get(&realm)
        .basic_auth("anyone", Some(TOKEN))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = granted["token"].as_str().unwrap().to_owned();
    assert_ne!(token, TOKEN);
    assert!(!token.contains(TOKEN), "{token}");
    assert_eq!(granted["access_token"], token.as_str());
    assert_eq!(granted["expires_in"], 3600);
    let issued_at = granted["issued_at"].as_str().unwrap();
    assert!(
        issued_at.len() == 20 && issued_at.ends_with('Z') && issued_at.as_bytes()[10] == b'T',
        "{issued_at}"
    );
    let push = |bearer: &str| http.post(&url).bearer_auth(bearer).send().unwrap();
    assert_eq!(push(&token).status(), 202);
    // The token is the credential's MAC of its expiry, an hour away.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    assert_eq!(parts[0], "cairn1");
    let expiry: u64 = parts[1].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expiry.abs_diff(now + 3600) < 60, "{expiry} {now}");
    assert_eq!(token, derived_token(TOKEN, expiry));
    // Changing the expiry or the MAC, or another credential's MAC, is refused.
    let later = format!("cairn1.{}.{}", expiry + 86_400, parts[2]);
    assert_error(push(&later), 401, "UNAUTHORIZED");
    let mut mac = parts[2].to_owned().into_bytes();
    mac[0] = if mac[0] == b'A' { b'B' } else { b'A' };
    let forged = format!("cairn1.{expiry}.{}", String::from_utf8(mac).unwrap());
    assert_error(push(&forged), 401, "UNAUTHORIZED");
    assert_error(
        push(&derived_token("another credential", expiry)),
        401,
        "UNAUTHORIZED",
    );
    assert_error(push(&format!("cairn1.{expiry}.")), 401, "UNAUTHORIZED");
    // Expired: refused, though its MAC is right.
    assert_error(push(&derived_token(TOKEN, now - 1)), 401, "UNAUTHORIZED");
    assert_eq!(push(&derived_token(TOKEN, now + 600)).status(), 202);
    // A derived token is a bearer token only, not a Basic password.
    assert_error(
        http.post(&url)
            .basic_auth("anyone", Some(&token))
            .send()
            .unwrap(),
        401,
        "UNAUTHORIZED",
    );
    // The credential itself still works, and the anonymous token still pulls only.
    assert_eq!(push(TOKEN).status(), 202);
    let anonymous: Value = http.get(&realm).send().unwrap().json().unwrap();
    assert_error(
        push(anonymous["token"].as_str().unwrap()),
        401,
        "UNAUTHORIZED",
    );
}
