//! Publishing over OCI into the verifiable log, against `cairn serve` over real HTTP on
//! loopback: publisher accounts (`cairn admin publisher`), tokens as Basic passwords and
//! through `/v2/token`, a pushed Wasm artifact becoming a signed release in the package's
//! log, every refusal (a JSON error, the log unchanged), grants, deletes as yanks, and
//! referrers in package repositories. The peer clients (`wkg publish`, `warg login`) have
//! their own tests at the end; each says loudly when its peer is not installed.

mod docker_registry;
mod support;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use cairn_protocol::{PackageEntry, PackageName, PackagePermission, PublicKey};
use reqwest::blocking::Response;
use serde_json::Value;
use support::*;

const COMPONENT: &str = "b01-fac.component.wasm";
const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

fn start(name: &str, extra: &[&str]) -> TestServer {
    let data = temp_dir(name);
    let mut args = vec!["--namespace", "example", "--namespace", "other"];
    args.extend_from_slice(extra);
    TestServer::start(&data, &args)
}

/// An account made with `cairn admin publisher add`, as its `--json` prints it.
struct Account {
    token: String,
    public_key: String,
}

fn add_publisher(server: &TestServer, name: &str, scopes: &[&str]) -> Account {
    let data = server.data.to_str().unwrap();
    let mut args = vec!["admin", "publisher", "add", "--data", data, name, "--json"];
    args.extend_from_slice(scopes);
    let (ok, stdout, stderr) = cairn(&args);
    assert!(ok, "publisher add failed: {stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    Account {
        token: json["token"].as_str().unwrap().to_owned(),
        public_key: json["public_key"].as_str().unwrap().to_owned(),
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn request(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::blocking::RequestBuilder {
    let builder = server
        .client()
        .http
        .request(method, format!("{}{path}", server.url));
    match token {
        Some(token) => builder.header("authorization", basic("publisher", token)),
        None => builder,
    }
}

fn get(server: &TestServer, path: &str) -> Response {
    request(server, reqwest::Method::GET, path, None)
        .send()
        .unwrap()
}

/// Pushes `bytes` as a blob of `repo` with a single POST; returns its digest.
fn push_blob(server: &TestServer, token: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let response = request(
        server,
        reqwest::Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        Some(token),
    )
    .body(bytes.to_vec())
    .send()
    .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().unwrap());
    digest
}

fn config_json(note: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [],
        "note": note,
    }))
    .unwrap()
}

/// A Wasm artifact manifest: `config` with `config_type`, and `layers` as (media type, bytes).
fn manifest(config_type: &str, config: &[u8], layers: &[(&str, &[u8])]) -> Vec<u8> {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(media_type, bytes)| {
            serde_json::json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": config_type, "digest": sha256(config), "size": config.len()},
        "layers": layers,
    }))
    .unwrap()
}

fn put_manifest(
    server: &TestServer,
    token: &str,
    repo: &str,
    reference: &str,
    body: &[u8],
) -> Response {
    request(
        server,
        reqwest::Method::PUT,
        &format!("/v2/{repo}/manifests/{reference}"),
        Some(token),
    )
    .header("content-type", MANIFEST_TYPE)
    .body(body.to_vec())
    .send()
    .unwrap()
}

/// Pushes `wasm` as release `version` of `repo`: config, layer, manifest. Returns the
/// manifest's bytes and the answer to its PUT.
fn push_release(
    server: &TestServer,
    token: &str,
    repo: &str,
    version: &str,
    wasm: &[u8],
) -> (Vec<u8>, Response) {
    let config = config_json(version);
    push_blob(server, token, repo, &config);
    push_blob(server, token, repo, wasm);
    let body = manifest(WASM_CONFIG, &config, &[("application/wasm", wasm)]);
    let response = put_manifest(server, token, repo, version, &body);
    (body, response)
}

fn log_length(server: &TestServer) -> u64 {
    server.client().checkpoint().unwrap().contents.log_length
}

/// The error of a JSON error body: `(code, message)`.
fn oci_error(response: Response, status: u16) -> (String, String) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().expect("a JSON error body");
    let error = &body["errors"][0];
    (
        error["code"].as_str().unwrap().to_owned(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn publisher_accounts_are_listed_and_revoked() {
    let server = start("pub-accounts", &[]);
    let alice = add_publisher(&server, "alice", &["--namespace", "example"]);
    assert!(alice.token.starts_with("cairn_pub_"));
    let data = server.data.to_str().unwrap();
    // The signing key is a secret file of its own; the database keeps no token.
    let key_file = server.data.join("publishers/alice.key");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let database = std::fs::read(server.data.join("cairn.db")).unwrap();
    assert!(!database
        .windows(alice.token.len())
        .any(|w| w == alice.token.as_bytes()));
    // A name is taken once.
    let (ok, _, stderr) = cairn(&[
        "admin",
        "publisher",
        "add",
        "--data",
        data,
        "alice",
        "--namespace",
        "example",
    ]);
    assert!(!ok);
    assert!(stderr.contains("exists already"), "{stderr}");
    let (ok, _, stderr) = cairn(&["admin", "publisher", "add", "--data", data, "bob"]);
    assert!(!ok);
    assert!(
        stderr.contains("at least one --namespace or --package"),
        "{stderr}"
    );
    add_publisher(
        &server,
        "bob",
        &["--package", "example:one", "--namespace", "other"],
    );
    let (ok, stdout, _) = cairn(&["admin", "publisher", "list", "--data", data, "--json"]);
    assert!(ok);
    let list: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list[0]["name"], "alice");
    assert_eq!(list[0]["scopes"], serde_json::json!(["example"]));
    assert_eq!(
        list[1]["scopes"],
        serde_json::json!(["example:one", "other"])
    );
    assert_eq!(list[0]["public_key"], alice.public_key.as_str());
    assert!(
        list[0].get("token").is_none(),
        "the token is shown once only"
    );
    // The token opens pushes; revoked, it opens nothing, at once (the server runs).
    push_blob(&server, &alice.token, "example/fac", b"{}");
    let (ok, stdout, _) = cairn(&["admin", "publisher", "revoke", "--data", data, "alice"]);
    assert!(ok);
    assert!(stdout.contains("revoked publisher `alice`"), "{stdout}");
    let response = request(
        &server,
        reqwest::Method::POST,
        "/v2/example/fac/blobs/uploads/",
        Some(&alice.token),
    )
    .send()
    .unwrap();
    assert!(header(&response, "www-authenticate").starts_with("Bearer realm="));
    let (code, _) = oci_error(response, 401);
    assert_eq!(code, "UNAUTHORIZED");
    let (ok, _, stderr) = cairn(&["admin", "publisher", "revoke", "--data", data, "carol"]);
    assert!(!ok);
    assert!(stderr.contains("there is no publisher `carol`"), "{stderr}");
}

#[test]
fn a_push_becomes_a_release_in_the_log() {
    let server = start("pub-release", &[]);
    let alice = add_publisher(&server, "alice", &["--namespace", "example"]);
    let wasm = fixture(COMPONENT);
    let before = log_length(&server);
    let (body, response) = push_release(&server, &alice.token, "example/fac", "1.0.0", &wasm);
    assert_eq!(response.status(), 201, "{}", response.text().unwrap());
    let digest = sha256(&body);
    assert_eq!(header(&response, "docker-content-digest"), digest);
    // Answered once published: one record (init and release) is in the served log.
    assert_eq!(log_length(&server), before + 1);
    // The manifest is served as pushed, under its version and by its digest.
    let by_tag = get(&server, "/v2/example/fac/manifests/1.0.0");
    assert_eq!(header(&by_tag, "docker-content-digest"), digest);
    assert_eq!(header(&by_tag, "content-type"), MANIFEST_TYPE);
    assert_eq!(by_tag.bytes().unwrap().to_vec(), body);
    assert_eq!(
        get(&server, &format!("/v2/example/fac/manifests/{digest}"))
            .bytes()
            .unwrap()
            .to_vec(),
        body
    );
    let config = config_json("1.0.0");
    assert_eq!(
        get(
            &server,
            &format!("/v2/example/fac/blobs/{}", sha256(&config))
        )
        .bytes()
        .unwrap()
        .to_vec(),
        config
    );
    assert_eq!(
        get(&server, &format!("/v2/example/fac/blobs/{}", sha256(&wasm)))
            .bytes()
            .unwrap()
            .to_vec(),
        wasm
    );
    // The split manifest refers to the pushed manifest.
    let referrers: Value = get(&server, &format!("/v2/example/fac/referrers/{digest}"))
        .json()
        .unwrap();
    assert_eq!(
        referrers["manifests"][0]["artifactType"],
        "application/vnd.cairn.split.manifest.v1+json"
    );
    // The verifying client fetches it through the log, and the package's key is the one the
    // registry keeps for alice.
    let home = temp_dir("pub-release-client");
    let env = [
        ("CAIRN_CONFIG_DIR", home.join("config")),
        ("CAIRN_DATA_DIR", home.join("data")),
    ];
    let out = home.join("fac.wasm");
    let fetched = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "fetch",
            "example:fac@1.0.0",
            "--registry",
            &server.url,
            "-o",
        ])
        .arg(&out)
        .envs(env.clone())
        .output()
        .unwrap();
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    assert_eq!(std::fs::read(&out).unwrap(), wasm);
    let info = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["info", "example:fac", "--registry", &server.url, "--json"])
        .envs(env)
        .output()
        .unwrap();
    let info_text = String::from_utf8_lossy(&info.stdout);
    let key_id = alice
        .public_key
        .parse::<PublicKey>()
        .unwrap()
        .fingerprint()
        .to_string();
    assert!(info_text.contains(&key_id), "{info_text}");
    // The same push again is accepted as it is; the log does not grow.
    let again = put_manifest(&server, &alice.token, "example/fac", "1.0.0", &body);
    assert_eq!(again.status(), 201);
    assert_eq!(header(&again, "docker-content-digest"), digest);
    let length = log_length(&server);
    // Another manifest for a released version is refused, naming the version.
    let other_config = config_json("other");
    push_blob(&server, &alice.token, "example/fac", &other_config);
    let moved = manifest(WASM_CONFIG, &other_config, &[("application/wasm", &wasm)]);
    let (code, message) = oci_error(
        put_manifest(&server, &alice.token, "example/fac", "1.0.0", &moved),
        409,
    );
    assert_eq!(code, "DENIED");
    assert!(
        message.contains("version 1.0.0 of `example:fac` is already released"),
        "{message}"
    );
    // A second version is a second record, signed on the first.
    let (_, response) = push_release(
        &server,
        &alice.token,
        "example/fac",
        "1.1.0",
        &fixture("b03-rs-calc.wac.component.wasm"),
    );
    assert_eq!(response.status(), 201);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(log_length(&server), length + 1);
    let tags: Value = get(&server, "/v2/example/fac/tags/list").json().unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["1.0.0", "1.1.0"]));
}

#[test]
fn refused_pushes_leave_the_log_unchanged() {
    let server = start("pub-refused", &[]);
    let alice = add_publisher(&server, "alice", &["--namespace", "example"]);
    let bob = add_publisher(&server, "bob", &["--namespace", "other"]);
    let wasm = fixture(COMPONENT);
    let config = config_json("x");
    push_blob(&server, &alice.token, "example/fac", &config);
    push_blob(&server, &alice.token, "example/fac", &wasm);
    let good = manifest(WASM_CONFIG, &config, &[("application/wasm", &wasm)]);
    let length = log_length(&server);

    // No token: 401 with the challenge.
    let response = request(
        &server,
        reqwest::Method::PUT,
        "/v2/example/fac/manifests/1.0.0",
        None,
    )
    .header("content-type", MANIFEST_TYPE)
    .body(good.clone())
    .send()
    .unwrap();
    assert!(header(&response, "www-authenticate").contains("/v2/token"));
    assert_eq!(oci_error(response, 401).0, "UNAUTHORIZED");
    // A token without the namespace.
    let (code, message) = oci_error(
        put_manifest(&server, &bob.token, "example/fac", "1.0.0", &good),
        403,
    );
    assert_eq!(code, "DENIED");
    assert!(
        message.contains("publisher `bob` may not publish `example:fac`"),
        "{message}"
    );
    // A tag that is not a version.
    let (code, message) = oci_error(
        put_manifest(&server, &alice.token, "example/fac", "latest", &good),
        400,
    );
    assert_eq!(code, "TAG_INVALID");
    assert!(message.contains("`latest` is not a version"), "{message}");
    // A config of another media type.
    let docker = manifest(
        "application/vnd.oci.image.config.v1+json",
        &config,
        &[("application/wasm", &wasm)],
    );
    let (code, message) = oci_error(
        put_manifest(&server, &alice.token, "example/fac", "1.0.0", &docker),
        400,
    );
    assert_eq!(code, "MANIFEST_INVALID");
    assert!(
        message.contains("application/vnd.oci.image.config.v1+json"),
        "{message}"
    );
    // A layer of another media type, and two layers.
    let tar = manifest(
        WASM_CONFIG,
        &config,
        &[("application/vnd.oci.image.layer.v1.tar", &wasm)],
    );
    let (code, message) = oci_error(
        put_manifest(&server, &alice.token, "example/fac", "1.0.0", &tar),
        400,
    );
    assert_eq!(code, "MANIFEST_INVALID");
    assert!(message.contains("exactly one layer"), "{message}");
    let two = manifest(
        WASM_CONFIG,
        &config,
        &[("application/wasm", &wasm), ("application/wasm", &wasm)],
    );
    assert_eq!(
        oci_error(
            put_manifest(&server, &alice.token, "example/fac", "1.0.0", &two),
            400
        )
        .0,
        "MANIFEST_INVALID"
    );
    // A layer that is not WebAssembly.
    let text = b"not a component at all".to_vec();
    push_blob(&server, &alice.token, "example/fac", &text);
    let not_wasm = manifest(WASM_CONFIG, &config, &[("application/wasm", &text)]);
    let (code, message) = oci_error(
        put_manifest(&server, &alice.token, "example/fac", "1.0.0", &not_wasm),
        400,
    );
    assert_eq!(code, "MANIFEST_INVALID");
    assert!(message.contains("not a valid WebAssembly"), "{message}");
    // A layer never pushed.
    let missing = manifest(
        WASM_CONFIG,
        &config,
        &[("application/wasm", b"\0asm\x01\0\0\0never")],
    );
    assert_eq!(
        oci_error(
            put_manifest(&server, &alice.token, "example/fac", "1.0.0", &missing),
            400
        )
        .0,
        "MANIFEST_BLOB_UNKNOWN"
    );
    // A namespace the registry does not host.
    let carol = add_publisher(&server, "carol", &["--namespace", "elsewhere"]);
    let (code, message) = oci_error(
        put_manifest(&server, &carol.token, "elsewhere/fac", "1.0.0", &good),
        403,
    );
    assert_eq!(code, "DENIED");
    assert!(
        message.contains("does not host namespace `elsewhere`"),
        "{message}"
    );
    // None of it reached the log.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(log_length(&server), length);
    assert_eq!(
        get(&server, "/v2/example/fac/manifests/1.0.0").status(),
        404
    );
    // And the good one still goes in.
    assert_eq!(
        put_manifest(&server, &alice.token, "example/fac", "1.0.0", &good).status(),
        201
    );
}

#[test]
fn a_package_takes_pushes_only_once_its_owner_grants_the_key() {
    let server = start("pub-grant", &[]);
    let alice = add_publisher(&server, "alice", &["--namespace", "example"]);
    let client = server.client();
    let mut owner = Publisher::new("example:owned");
    owner.publish_init(&client);
    owner.publish_release(&client, "1.0.0", &fixture(COMPONENT));
    let length = log_length(&server);
    let wasm = fixture("b03-rs-calc.wac.component.wasm");
    let (_, response) = push_release(&server, &alice.token, "example/owned", "2.0.0", &wasm);
    let (code, message) = oci_error(response, 403);
    assert_eq!(code, "DENIED");
    assert!(
        message.contains(&format!(
            "cairn publish grant example:owned {} --permission release",
            alice.public_key
        )),
        "{message}"
    );
    assert_eq!(log_length(&server), length);
    // The owner grants alice's key `release` with an ordinary signed record.
    let key: PublicKey = alice.public_key.parse().unwrap();
    let grant = owner.sign(vec![PackageEntry::Grant {
        key,
        permissions: vec![PackagePermission::Release],
    }]);
    let name: PackageName = "example:owned".parse().unwrap();
    let id = *grant.record_id();
    client.publish(&name, &grant);
    client.wait(&name, &id);
    let body = manifest(
        WASM_CONFIG,
        &config_json("2.0.0"),
        &[("application/wasm", &wasm)],
    );
    let response = put_manifest(&server, &alice.token, "example/owned", "2.0.0", &body);
    assert_eq!(response.status(), 201, "{}", response.text().unwrap());
    assert_eq!(
        get(&server, "/v2/example/owned/manifests/2.0.0")
            .bytes()
            .unwrap()
            .to_vec(),
        body
    );
    // Only `release` was granted: a delete (a yank) is refused, naming the permission.
    let response = request(
        &server,
        reqwest::Method::DELETE,
        "/v2/example/owned/manifests/2.0.0",
        Some(&alice.token),
    )
    .send()
    .unwrap();
    let (code, message) = oci_error(response, 403);
    assert_eq!(code, "DENIED");
    assert!(message.contains("--permission yank"), "{message}");
}

#[test]
fn a_delete_is_a_yank() {
    let server = start("pub-yank", &[]);
    let alice = add_publisher(&server, "alice", &["--namespace", "example"]);
    let wasm = fixture(COMPONENT);
    let (body, response) = push_release(&server, &alice.token, "example/fac", "1.0.0", &wasm);
    assert_eq!(response.status(), 201);
    let digest = sha256(&body);
    let length = log_length(&server);
    let response = request(
        &server,
        reqwest::Method::DELETE,
        "/v2/example/fac/manifests/1.0.0",
        Some(&alice.token),
    )
    .send()
    .unwrap();
    assert_eq!(response.status(), 202);
    // One yank record; the tag is gone, the manifest stays readable by digest.
    assert_eq!(log_length(&server), length + 1);
    assert_eq!(
        get(&server, "/v2/example/fac/manifests/1.0.0").status(),
        404
    );
    assert_eq!(
        get(&server, &format!("/v2/example/fac/manifests/{digest}"))
            .bytes()
            .unwrap()
            .to_vec(),
        body
    );
    let tags: Value = get(&server, "/v2/example/fac/tags/list").json().unwrap();
    assert_eq!(tags["tags"], serde_json::json!([]));
    // Deleting again changes nothing; pushing the version again is refused.
    let again = request(
        &server,
        reqwest::Method::DELETE,
        &format!("/v2/example/fac/manifests/{digest}"),
        Some(&alice.token),
    )
    .send()
    .unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(log_length(&server), length + 1);
    let (code, message) = oci_error(
        put_manifest(&server, &alice.token, "example/fac", "1.0.0", &body),
        409,
    );
    assert_eq!(code, "DENIED");
    assert!(
        message.contains("was released and then yanked"),
        "{message}"
    );
}

#[test]
fn referrers_of_a_release_are_kept_and_listed() {
    let server = start("pub-referrers", &[]);
    let alice = add_publisher(&server, "alice", &["--namespace", "example"]);
    let wasm = fixture(COMPONENT);
    let (body, _) = push_release(&server, &alice.token, "example/fac", "1.0.0", &wasm);
    let subject = sha256(&body);
    let length = log_length(&server);
    let sbom = br#"{"spdxVersion":"SPDX-2.3","name":"fac"}"#.to_vec();
    push_blob(&server, &alice.token, "example/fac", b"{}");
    push_blob(&server, &alice.token, "example/fac", &sbom);
    let referrer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": sha256(&sbom), "size": sbom.len()}],
        "subject": {"mediaType": MANIFEST_TYPE, "digest": subject, "size": body.len()},
        "annotations": {"org.example.kind": "sbom"},
    }))
    .unwrap();
    let referrer_digest = sha256(&referrer);
    // Under a version it is refused: versions name releases.
    let (code, message) = oci_error(
        put_manifest(&server, &alice.token, "example/fac", "1.0.1", &referrer),
        400,
    );
    assert_eq!(code, "TAG_INVALID");
    assert!(message.contains("versions name releases only"), "{message}");
    let response = put_manifest(
        &server,
        &alice.token,
        "example/fac",
        &referrer_digest,
        &referrer,
    );
    assert_eq!(response.status(), 201, "{}", response.text().unwrap());
    assert_eq!(header(&response, "oci-subject"), subject);
    // Not an entry of the log.
    assert_eq!(log_length(&server), length);
    let all: Value = get(&server, &format!("/v2/example/fac/referrers/{subject}"))
        .json()
        .unwrap();
    let types: Vec<&str> = all["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "application/vnd.cairn.split.manifest.v1+json",
            "application/spdx+json"
        ]
    );
    let filtered: Value = get(
        &server,
        &format!("/v2/example/fac/referrers/{subject}?artifactType=application/spdx%2Bjson"),
    )
    .json()
    .unwrap();
    assert_eq!(filtered["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["manifests"][0]["digest"], referrer_digest.as_str());
    assert_eq!(
        filtered["manifests"][0]["annotations"]["org.example.kind"],
        "sbom"
    );
    assert_eq!(
        get(
            &server,
            &format!("/v2/example/fac/manifests/{referrer_digest}")
        )
        .bytes()
        .unwrap()
        .to_vec(),
        referrer
    );
    assert_eq!(
        get(&server, &format!("/v2/example/fac/blobs/{}", sha256(&sbom)))
            .bytes()
            .unwrap()
            .to_vec(),
        sbom
    );
    // Under a tag that is not a version it is kept too (as `oras` and `cosign` push them),
    // outside the log.
    assert_eq!(
        put_manifest(&server, &alice.token, "example/fac", "sbom", &referrer).status(),
        201
    );
    assert_eq!(
        get(&server, "/v2/example/fac/manifests/sbom")
            .bytes()
            .unwrap()
            .to_vec(),
        referrer
    );
    let tags: Value = get(&server, "/v2/example/fac/tags/list").json().unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["1.0.0", "sbom"]));
    assert_eq!(log_length(&server), length);
    // `cairn info` lists them under the release it verified.
    let home = temp_dir("pub-referrers-client");
    let info = |args: &[&str]| {
        let run = in_home(Path::new(env!("CARGO_BIN_EXE_cairn")), &home)
            .args(args)
            .args(["--registry", &server.url])
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", output_text(&run));
        String::from_utf8(run.stdout).unwrap()
    };
    let out = home.join("fac.wasm");
    info(&["fetch", "example:fac@1.0.0", "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), wasm);
    let listed: Value = serde_json::from_str(&info(&["info", "example:fac", "--json"])).unwrap();
    let release = &listed[0]["versions"][0];
    assert_eq!(release["manifest"], subject.as_str());
    let referrers = release["referrers"].as_array().unwrap();
    assert_eq!(referrers.len(), 2, "{listed}");
    assert_eq!(referrers[1]["artifactType"], "application/spdx+json");
    assert_eq!(referrers[1]["digest"], referrer_digest.as_str());
    let text = info(&["info", "example:fac"]);
    assert!(
        text.contains(&format!("referrer application/spdx+json {referrer_digest}")),
        "{text}"
    );
    let offline = info(&["info", "example:fac", "--offline"]);
    assert!(!offline.contains("referrer"), "{offline}");
    // Its publisher may remove it; that is no yank.
    let response = request(
        &server,
        reqwest::Method::DELETE,
        &format!("/v2/example/fac/manifests/{referrer_digest}"),
        Some(&alice.token),
    )
    .send()
    .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(log_length(&server), length);
    assert_eq!(
        get(&server, "/v2/example/fac/manifests/1.0.0").status(),
        200
    );
}

#[test]
fn the_token_flow_issues_tokens_scoped_to_repositories() {
    let server = start("pub-token", &[]);
    let alice = add_publisher(&server, "alice", &["--namespace", "example"]);
    // The ping asks for credentials, since the registry has accounts.
    let ping = get(&server, "/v2/");
    assert_eq!(ping.status(), 401);
    assert!(header(&ping, "www-authenticate").contains("realm=\""));
    let token = |scope: &str, password: &str| -> Value {
        request(
            &server,
            reqwest::Method::GET,
            &format!("/v2/token?service=cairn&scope={scope}"),
            Some(password),
        )
        .send()
        .unwrap()
        .json()
        .unwrap()
    };
    let answer = token("repository:example/fac:pull,push", &alice.token);
    let scoped = answer["token"].as_str().unwrap().to_owned();
    assert_eq!(answer["expires_in"], 3600);
    assert!(scoped.starts_with("eyJ"), "a JSON Web Token: {scoped}");
    let bearer = |path: &str, token: &str| {
        server
            .client()
            .http
            .post(format!("{}{path}", server.url))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    assert_eq!(
        bearer("/v2/example/fac/blobs/uploads/", &scoped).status(),
        202
    );
    let (code, message) = oci_error(bearer("/v2/example/other/blobs/uploads/", &scoped), 403);
    assert_eq!(code, "DENIED");
    assert!(
        message.contains("issued for other repositories"),
        "{message}"
    );
    // A scope outside the account gives a token that pushes nowhere.
    let outside = token("repository:other/fac:pull,push", &alice.token)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        oci_error(bearer("/v2/other/fac/blobs/uploads/", &outside), 403).0,
        "DENIED"
    );
    // A tampered token is no token.
    let mut forged = scoped.clone();
    forged.pop();
    forged.push(if scoped.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        oci_error(bearer("/v2/example/fac/blobs/uploads/", &forged), 401).0,
        "UNAUTHORIZED"
    );
    // Revoking the account revokes its tokens.
    let data = server.data.to_str().unwrap();
    assert!(cairn(&["admin", "publisher", "revoke", "--data", data, "alice"]).0);
    assert_eq!(
        oci_error(bearer("/v2/example/fac/blobs/uploads/", &scoped), 401).0,
        "UNAUTHORIZED"
    );
    let refused = request(
        &server,
        reqwest::Method::GET,
        "/v2/token?scope=repository:example/fac:push",
        Some(&alice.token),
    )
    .send()
    .unwrap();
    assert_eq!(oci_error(refused, 401).0, "UNAUTHORIZED");
}

// ---------------------------------------------------------------------------------------
// Peers: `wkg publish`, `warg login`.

/// A command run in its own home, with the XDG folders under it.
fn in_home(program: &Path, home: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("CAIRN_CONFIG_DIR", home.join("cairn-config"))
        .env("CAIRN_DATA_DIR", home.join("cairn-data"))
        .env_remove("WKG_OCI_INSECURE")
        .env_remove("WKG_REGISTRY")
        .env_remove("WKG_CACHE_DIR")
        .env_remove("CAIRN_TOKEN")
        .env("RUST_BACKTRACE", "0")
        .stdin(std::process::Stdio::null());
    command
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn wkg_publish_then_wkg_cairn_and_warg_get_the_same_bytes() {
    let (Some(wkg), Some(warg)) = (peer("wkg", "CAIRN_WKG"), peer("warg", "CAIRN_WARG")) else {
        return;
    };
    let server = start("pub-wkg", &[]);
    let alice = add_publisher(&server, "alice", &["--namespace", "example"]);
    let home = temp_dir("pub-wkg-home");
    let registry = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let config = home.join("wkg.toml");
    std::fs::write(
        &config,
        format!(
            "[namespace_registries]\nexample = \"{registry}\"\n\n\
             [registry.\"{registry}\".oci]\nprotocol = \"http\"\n\
             auth = {{ username = \"alice\", password = \"{}\" }}\n",
            alice.token
        ),
    )
    .unwrap();
    // A real artifact made by wkg itself: a WIT package (wkg 0.16.1 reads the package name
    // and version from the file, and ignores `--package` for files without a version).
    let wit = home.join("greeter/wit");
    std::fs::create_dir_all(&wit).unwrap();
    std::fs::write(
        wit.join("greeter.wit"),
        "package example:greeter@1.0.0;\n\ninterface greet {\n  hello: func(name: string) -> string;\n}\n\nworld greeter {\n  export greet;\n}\n",
    )
    .unwrap();
    let file = home.join("greeter.wasm");
    let built = in_home(&wkg, &home)
        .args(["wit", "build", "--config"])
        .arg(&config)
        .arg("-o")
        .arg(&file)
        .current_dir(home.join("greeter"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "wkg wit build failed:\n{}",
        output_text(&built)
    );
    let bytes = std::fs::read(&file).unwrap();
    let length = log_length(&server);
    let published = in_home(&wkg, &home)
        .args(["publish", "--config"])
        .arg(&config)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "wkg publish failed:\n{}",
        output_text(&published)
    );
    assert!(output_text(&published).contains("Published example:greeter@1.0.0"));
    assert_eq!(log_length(&server), length + 1);
    // wkg, the verifying cairn client and the reference warg client read the same bytes.
    let got = home.join("got.wasm");
    let run = in_home(&wkg, &home)
        .args(["get", "example:greeter@1.0.0", "--overwrite", "--config"])
        .arg(&config)
        .arg("-o")
        .arg(&got)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "wkg get failed:\n{}",
        output_text(&run)
    );
    assert_eq!(std::fs::read(&got).unwrap(), bytes);
    let fetched = home.join("fetched.wasm");
    let run = in_home(Path::new(env!("CARGO_BIN_EXE_cairn")), &home)
        .args([
            "fetch",
            "example:greeter@1.0.0",
            "--registry",
            &server.url,
            "-o",
        ])
        .arg(&fetched)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "cairn fetch failed:\n{}",
        output_text(&run)
    );
    assert_eq!(std::fs::read(&fetched).unwrap(), bytes);
    let warg_home = home.join("warg");
    let run = in_home(&warg, &warg_home)
        .args([
            "config",
            "--registry",
            &server.url,
            "--keyring-backend",
            "flat-file",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", output_text(&run));
    let out = warg_home.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let run = in_home(&warg, &warg_home)
        .args(["download", "example:greeter", "--version", "1.0.0", "-o"])
        .arg(format!("{}/", out.display()))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "warg download failed:\n{}",
        output_text(&run)
    );
    assert_eq!(std::fs::read(out.join("greeter.wasm")).unwrap(), bytes);
    // Publishing the same version again is refused clearly, and the log is unchanged.
    let again = in_home(&wkg, &home)
        .args(["publish", "--config"])
        .arg(&config)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        output_text(&again).contains("example:greeter@1.0.0 already exists"),
        "{}",
        output_text(&again)
    );
    assert_eq!(log_length(&server), length + 1);
    // A changed file under the same version: wkg's own check is skipped with
    // `--skip-dupes`? No: the registry refuses it, naming the version.
    std::fs::write(
        wit.join("greeter.wit"),
        "package example:greeter@1.0.0;\n\ninterface greet {\n  hello: func(name: string) -> string;\n  bye: func();\n}\n",
    )
    .unwrap();
    let changed = home.join("changed.wasm");
    let built = in_home(&wkg, &home)
        .args(["wit", "build", "--config"])
        .arg(&config)
        .arg("-o")
        .arg(&changed)
        .current_dir(home.join("greeter"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", output_text(&built));
    let config_bytes = config_json("changed");
    push_blob(&server, &alice.token, "example/greeter", &config_bytes);
    let changed_bytes = std::fs::read(&changed).unwrap();
    push_blob(&server, &alice.token, "example/greeter", &changed_bytes);
    let body = manifest(
        WASM_CONFIG,
        &config_bytes,
        &[("application/wasm", &changed_bytes)],
    );
    let (code, message) = oci_error(
        put_manifest(&server, &alice.token, "example/greeter", "1.0.0", &body),
        409,
    );
    assert_eq!(code, "DENIED");
    assert!(
        message.contains("version 1.0.0 of `example:greeter` is already released"),
        "{message}"
    );
    assert_eq!(log_length(&server), length + 1);
}

#[test]
fn a_registry_that_requires_tokens_publishes_only_for_accounts() {
    let Some(warg) = peer("warg", "CAIRN_WARG") else {
        return;
    };
    let server = start("pub-required", &["--require-publisher-token"]);
    let alice = add_publisher(&server, "alice", &["--namespace", "example"]);
    let home = temp_dir("pub-required-home");
    let run = in_home(&warg, &home)
        .args([
            "config",
            "--registry",
            &server.url,
            "--keyring-backend",
            "flat-file",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", output_text(&run));
    let run = in_home(&warg, &home).args(["key", "new"]).output().unwrap();
    assert!(run.status.success(), "{}", output_text(&run));
    let length = log_length(&server);
    // Without a login, refused with the reason.
    let run = in_home(&warg, &home)
        .args(["publish", "init", "example:hello"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        output_text(&run).contains("publishes only for its publisher accounts"),
        "{}",
        output_text(&run)
    );
    // `warg login` reads the token at a terminal prompt: typed into a pseudo-terminal once
    // the prompt is up (in raw mode, Enter is a carriage return).
    let login = Command::new("sh")
        .args([
            "-c",
            &format!(
                "(sleep 2; printf '%s\\r' \"$TOKEN\"; sleep 3) | timeout 30 script -qec '{} login' /dev/null",
                warg.display()
            ),
        ])
        .env("TOKEN", &alice.token)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .output()
        .unwrap();
    assert!(
        output_text(&login).contains("Auth token was set successfully"),
        "warg login failed:\n{}",
        output_text(&login)
    );
    let run = in_home(&warg, &home)
        .args(["publish", "init", "example:hello"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "warg publish init failed:\n{}",
        output_text(&run)
    );
    let fixture_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(COMPONENT);
    let run = in_home(&warg, &home)
        .args([
            "publish",
            "release",
            "--name",
            "example:hello",
            "--version",
            "1.0.0",
        ])
        .arg(&fixture_path)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "warg publish release failed:\n{}",
        output_text(&run)
    );
    assert_eq!(log_length(&server), length + 2);
    // A package outside the account's scope is refused though logged in.
    let run = in_home(&warg, &home)
        .args(["publish", "init", "other:hello"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        output_text(&run).contains("publisher `alice` may not publish `other:hello`"),
        "{}",
        output_text(&run)
    );

    // The same for cairn's client: refused, then `cairn login`, then published.
    let cairn_bin = Path::new(env!("CARGO_BIN_EXE_cairn"));
    let run = in_home(cairn_bin, &home)
        .args(["key", "new"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", output_text(&run));
    let run = in_home(cairn_bin, &home)
        .args([
            "publish",
            "init",
            "example:second",
            "--registry",
            &server.url,
        ])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        output_text(&run).contains("publishes only for its publisher accounts"),
        "{}",
        output_text(&run)
    );
    let mut login = in_home(cairn_bin, &home)
        .args(["login", "--registry", &server.url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    writeln!(login.stdin.take().unwrap(), "{}", alice.token).unwrap();
    assert!(login.wait().unwrap().success());
    // The saved token is readable by its owner only.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let tokens = home.join("cairn-config/tokens.json");
        let mode = std::fs::metadata(&tokens).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", tokens.display());
    }
    let run = in_home(cairn_bin, &home)
        .args([
            "publish",
            "init",
            "example:second",
            "--registry",
            &server.url,
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "cairn publish init failed:\n{}",
        output_text(&run)
    );
    assert_eq!(log_length(&server), length + 3);
}

/// Whether `python3` can import oras-py; if not, the test says so loudly (and fails in CI).
fn oras_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import oras.client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        let message = "SKIPPED: oras-py is not installed (pip install oras); \
                       the oras publishing test did not run";
        assert!(std::env::var_os("CI").is_none(), "{message}, and CI is set");
        eprintln!("\n{}\n{message}\n{}\n", "!".repeat(72), "!".repeat(72));
    }
    found
}

#[test]
fn oras_publishes_a_release_and_a_referrer() {
    if !oras_available() {
        return;
    }
    let server = start("pub-oras", &[]);
    let alice = add_publisher(&server, "alice", &["--namespace", "example"]);
    let work = temp_dir("pub-oras-work");
    let wasm = fixture(COMPONENT);
    let config = br#"{"architecture":"wasm","os":"wasip2"}"#.to_vec();
    let sbom = br#"{"spdxVersion":"SPDX-2.3","name":"oras-fac"}"#.to_vec();
    std::fs::write(work.join("fac.wasm"), &wasm).unwrap();
    std::fs::write(work.join("config.json"), &config).unwrap();
    std::fs::write(work.join("sbom.json"), &sbom).unwrap();
    let length = log_length(&server);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oras/publish.py");
    let host = server.url.trim_start_matches("http://").to_owned();
    let output = Command::new("python3")
        .arg(&script)
        .arg(&host)
        .arg(&alice.token)
        .arg(&work)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "oras-py failed:\n{}",
        output_text(&output)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["release_status"], 201);
    assert_eq!(seen["sbom_status"], 201);
    assert_eq!(
        seen["manifest"]["config"]["digest"],
        sha256(&config).as_str()
    );
    // One record: the release is in the log, and the verifying client gets the file.
    assert_eq!(log_length(&server), length + 1);
    let home = temp_dir("pub-oras-client");
    let out = home.join("fac.wasm");
    let run = in_home(Path::new(env!("CARGO_BIN_EXE_cairn")), &home)
        .args([
            "fetch",
            "example:oras-fac@1.0.0",
            "--registry",
            &server.url,
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", output_text(&run));
    assert_eq!(std::fs::read(&out).unwrap(), wasm);
    // The SBOM refers to the release, outside the log, listed beside the split manifest.
    let subject = seen["release_digest"].as_str().unwrap();
    let referrers: Value = get(
        &server,
        &format!("/v2/example/oras-fac/referrers/{subject}"),
    )
    .json()
    .unwrap();
    let digests: Vec<&Value> = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["digest"])
        .collect();
    assert_eq!(digests.len(), 2, "{referrers}");
    assert_eq!(digests[1], &seen["sbom_digest"]);
    assert_eq!(log_length(&server), length + 1);
}

#[test]
fn skopeo_copies_a_release_from_another_registry_into_a_package() {
    let found = Command::new("sh")
        .args(["-c", "command -v skopeo"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let message = "SKIPPED: skopeo is not installed (apt-get install -y skopeo); \
                       the skopeo publishing test did not run";
        assert!(std::env::var_os("CI").is_none(), "{message}, and CI is set");
        eprintln!("\n{}\n{message}\n{}\n", "!".repeat(72), "!".repeat(72));
        return;
    }
    let Some(binary) = docker_registry::docker_registry_binary("the skopeo publishing test") else {
        return;
    };
    let upstream = docker_registry::DockerRegistry::start(
        &binary,
        "pub-skopeo-upstream",
        docker_registry::RegistryOptions::default(),
    );
    // A Wasm artifact in the other registry, pushed there over plain HTTP.
    let http = reqwest::blocking::Client::new();
    let wasm = fixture(COMPONENT);
    let config = br#"{"architecture":"wasm","os":"wasip2"}"#.to_vec();
    for blob in [&wasm, &config] {
        let session = http
            .post(format!("{}/v2/mirror/fac/blobs/uploads/", upstream.url()))
            .send()
            .unwrap();
        assert_eq!(session.status(), 202);
        let location = header(&session, "location");
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", upstream.url())
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let response = http
            .put(format!("{location}{separator}digest={}", sha256(blob)))
            .header("content-type", "application/octet-stream")
            .body(blob.to_vec())
            .send()
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().unwrap());
    }
    let body = manifest(WASM_CONFIG, &config, &[("application/wasm", &wasm)]);
    let response = http
        .put(format!("{}/v2/mirror/fac/manifests/1.0.0", upstream.url()))
        .header("content-type", MANIFEST_TYPE)
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().unwrap());

    let server = start("pub-skopeo", &[]);
    let alice = add_publisher(&server, "alice", &["--namespace", "example"]);
    let length = log_length(&server);
    let work = temp_dir("pub-skopeo-work");
    let policy = work.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let from = format!(
        "docker://{}/mirror/fac:1.0.0",
        upstream.url().trim_start_matches("http://")
    );
    let to = format!(
        "docker://{}/example/fac:1.0.0",
        server.url.trim_start_matches("http://")
    );
    let output = Command::new("skopeo")
        .arg("--policy")
        .arg(&policy)
        .args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
        ])
        .arg(format!("alice:{}", alice.token))
        .arg(&from)
        .arg(&to)
        .env("HOME", &work)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo copy failed:\n{}",
        output_text(&output)
    );
    // The same manifest, now a release in the log.
    assert_eq!(log_length(&server), length + 1);
    let served = get(&server, "/v2/example/fac/manifests/1.0.0");
    assert_eq!(header(&served, "docker-content-digest"), sha256(&body));
    assert_eq!(served.bytes().unwrap().to_vec(), body);
    assert_eq!(
        get(&server, &format!("/v2/example/fac/blobs/{}", sha256(&wasm)))
            .bytes()
            .unwrap()
            .to_vec(),
        wasm
    );
}
