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

fn sha256(bytes: &[u8]) -> String {
    let digest = sha2::Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

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
    let done = authed(
        &server,
        reqwest::Method::PUT,
        &format!("{location}?digest={}", sha256(&whole)),
    )
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
