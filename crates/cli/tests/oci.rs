//! `cairn serve` over real HTTP on loopback, through the OCI distribution API v1.1 (pull
//! side): released packages as CNCF Wasm artifacts, tags, catalog, errors, yanks, split
//! manifests as referrers, the discovery document, a pull by `skopeo` when it is installed,
//! and `wkg get` (found like `warg` in `warg_interop.rs`: `CAIRN_WKG`, then
//! `$CAIRN_PEERS/bin/wkg`, then `PATH`).

mod support;

use cairn_protocol::{Digest, PackageEntry};
use reqwest::blocking::Response;
use serde_json::Value;
use support::*;

const COMPONENT: &str = "b01-fac.component.wasm";
const OTHER_COMPONENT: &str = "b03-rs-calc.wac.component.wasm";
const CORE_MODULE: &str = "r03-wabt-fac.core.wasm";
/// The push credential of the servers `registry_with` starts.
const PUSH_TOKEN: &str = "push-secret";

fn get(server: &TestServer, path: &str) -> Response {
    server
        .client()
        .http
        .get(format!("{}{path}", server.url))
        .send()
        .unwrap()
}

fn head(server: &TestServer, path: &str) -> Response {
    server
        .client()
        .http
        .head(format!("{}{path}", server.url))
        .send()
        .unwrap()
}

/// A registry hosting `example`, with `example:fac` released at `versions` (all the same
/// component file).
fn registry_with(data_name: &str, versions: &[&str]) -> (TestServer, Publisher) {
    let data = temp_dir(data_name);
    let server = TestServer::start(
        &data,
        &["--namespace", "example", "--oci-push-token", PUSH_TOKEN],
    );
    let client = server.client();
    let mut publisher = Publisher::new("example:fac");
    publisher.publish_init(&client);
    let bytes = fixture(COMPONENT);
    for version in versions {
        publisher.publish_release(&client, version, &bytes);
    }
    (server, publisher)
}

/// A component's top-level import and export names, read with `wasmparser` by skipping
/// nested modules and components section by section.
fn top_level_names(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    use wasmparser::{Chunk, Parser, Payload};
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut parser = Parser::new(0);
    let mut data = bytes;
    loop {
        let Chunk::Parsed { consumed, payload } = parser.parse(data, true).unwrap() else {
            panic!("the whole file is given");
        };
        data = &data[consumed..];
        match payload {
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                // The parent parser resumes after the nested bytes, which it never reads.
                data = &data[(unchecked_range.end - unchecked_range.start) as usize..];
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    imports.push(import.unwrap().name.full_name().into_owned());
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader {
                    exports.push(export.unwrap().name.full_name().into_owned());
                }
            }
            Payload::End(_) => break,
            _ => {}
        }
    }
    (imports, exports)
}

#[test]
fn the_base_endpoint_answers_with_the_api_version() {
    // A read-only registry: the ping is open.
    let data = temp_dir("oci-ping-open");
    let open = TestServer::start(&data, &["--namespace", "example"]);
    let response = get(&open, "/v2/");
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "docker-distribution-api-version"),
        "registry/2.0"
    );
    // With pushes configured, the ping asks for credentials with the token challenge; the
    // realm's anonymous token or the credential opens it.
    let (server, _) = registry_with("oci-ping", &[]);
    let response = get(&server, "/v2/");
    assert_eq!(
        header(&response, "www-authenticate"),
        format!("Bearer realm=\"{}/v2/token\",service=\"cairn\"", server.url)
    );
    assert_eq!(
        header(&response, "docker-distribution-api-version"),
        "registry/2.0"
    );
    assert_error(response, 401, "UNAUTHORIZED");
    let http = &server.client().http;
    let token: Value = http
        .get(format!("{}/v2/token", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let anonymous = token["token"].as_str().unwrap();
    for response in [
        http.get(format!("{}/v2/", server.url))
            .bearer_auth(anonymous)
            .send()
            .unwrap(),
        http.get(format!("{}/v2/", server.url))
            .basic_auth("me", Some(PUSH_TOKEN))
            .send()
            .unwrap(),
    ] {
        assert_eq!(response.status(), 200);
    }
}

#[test]
fn a_release_is_a_wasm_artifact_by_tag_and_by_digest() {
    let (server, _) = registry_with("oci-manifest", &["1.0.0"]);
    let bytes = fixture(COMPONENT);

    let response = get(&server, "/v2/example/fac/manifests/1.0.0");
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "application/vnd.oci.image.manifest.v1+json"
    );
    let digest = header(&response, "docker-content-digest");
    let length = header(&response, "content-length");
    let by_tag = response.bytes().unwrap();
    assert_eq!(digest, sha256(&by_tag));
    assert_eq!(length, by_tag.len().to_string());

    let manifest: Value = serde_json::from_slice(&by_tag).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(layers[0]["digest"], Digest::of(&bytes).to_string());
    assert_eq!(layers[0]["size"], bytes.len());

    let response = get(&server, &format!("/v2/example/fac/manifests/{digest}"));
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "docker-content-digest"), digest);
    assert_eq!(response.bytes().unwrap(), by_tag);

    for reference in ["1.0.0", digest.as_str()] {
        let response = head(&server, &format!("/v2/example/fac/manifests/{reference}"));
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "docker-content-digest"), digest);
        assert_eq!(
            header(&response, "content-length"),
            by_tag.len().to_string()
        );
        assert!(response.bytes().unwrap().is_empty());
    }
}

#[test]
fn the_layer_is_the_published_file_with_ranges() {
    let (server, _) = registry_with("oci-layer", &["1.0.0"]);
    let bytes = fixture(COMPONENT);
    let layer = format!("/v2/example/fac/blobs/{}", Digest::of(&bytes));

    let response = get(&server, &layer);
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "docker-content-digest"), sha256(&bytes));
    assert_eq!(header(&response, "content-length"), bytes.len().to_string());
    assert_eq!(response.bytes().unwrap().as_ref(), &bytes[..]);

    let response = head(&server, &layer);
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-length"), bytes.len().to_string());
    assert_eq!(header(&response, "docker-content-digest"), sha256(&bytes));
    assert!(response.bytes().unwrap().is_empty());

    let response = server
        .client()
        .http
        .get(format!("{}{layer}", server.url))
        .header("range", "bytes=10-99")
        .send()
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(
        header(&response, "content-range"),
        format!("bytes 10-99/{}", bytes.len())
    );
    assert_eq!(response.bytes().unwrap().as_ref(), &bytes[10..100]);

    let response = server
        .client()
        .http
        .get(format!("{}{layer}", server.url))
        .header("range", format!("bytes={}-", bytes.len()))
        .send()
        .unwrap();
    assert_eq!(response.status(), 416);

    // Asked for zstd: the same layer (same digest) in zstd frames; with a range, or asked for
    // gzip only (as Go's clients do by themselves), the bytes.
    let with = |accept: &str, range: Option<&str>| {
        let mut request = server
            .client()
            .http
            .get(format!("{}{layer}", server.url))
            .header("accept-encoding", accept);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        request.send().unwrap()
    };
    let response = with("zstd", None);
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-encoding"), "zstd");
    assert_eq!(header(&response, "docker-content-digest"), sha256(&bytes));
    let body = response.bytes().unwrap();
    assert_eq!(zstd::decode_all(body.as_ref()).unwrap(), bytes);
    for (accept, range) in [("gzip", None), ("zstd", Some("bytes=10-99"))] {
        let response = with(accept, range);
        assert!(response.headers().get("content-encoding").is_none());
        let expected = if range.is_some() {
            &bytes[10..100]
        } else {
            &bytes[..]
        };
        assert_eq!(response.bytes().unwrap().as_ref(), expected);
    }
}

#[test]
fn the_config_describes_the_component_from_its_binary() {
    let data = temp_dir("oci-config");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let mut publisher = Publisher::new("example:fac");
    publisher.publish_init(&client);
    // A component with WASI imports and exports.
    let bytes = fixture(OTHER_COMPONENT);
    publisher.publish_release(&client, "1.0.0", &bytes);
    let manifest: Value = get(&server, "/v2/example/fac/manifests/1.0.0")
        .json()
        .unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let response = get(&server, &format!("/v2/example/fac/blobs/{config_digest}"));
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "docker-content-digest"), config_digest);
    let config_bytes = response.bytes().unwrap();
    assert_eq!(sha256(&config_bytes), config_digest);
    assert_eq!(manifest["config"]["size"], config_bytes.len());

    let config: Value = serde_json::from_slice(&config_bytes).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(
        config["layerDigests"],
        serde_json::json!([Digest::of(&bytes).to_string()])
    );
    let created = config["created"].as_str().unwrap();
    assert!(
        created.len() >= 20 && created.ends_with('Z') && &created[10..11] == "T",
        "{created}"
    );
    let (imports, exports) = top_level_names(&bytes);
    assert!(
        imports.iter().any(|name| name.starts_with("wasi:")),
        "{imports:?}"
    );
    assert!(!exports.is_empty());
    assert_eq!(config["component"]["imports"], serde_json::json!(imports));
    assert_eq!(config["component"]["exports"], serde_json::json!(exports));
    // The target world follows the WASI export that selects it (`wasi:cli/run` here).
    let run = exports
        .iter()
        .find_map(|name| name.strip_prefix("wasi:cli/run@"))
        .expect("the fixture is a WASI command");
    assert_eq!(
        config["component"]["target"],
        format!("wasi:cli/command@{run}")
    );
}

#[test]
fn a_core_module_is_a_wasip1_artifact_without_a_component_section() {
    let data = temp_dir("oci-core");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let mut publisher = Publisher::new("example:core");
    publisher.publish_init(&client);
    let bytes = fixture(CORE_MODULE);
    publisher.publish_release(&client, "0.1.0", &bytes);
    let manifest: Value = get(&server, "/v2/example/core/manifests/0.1.0")
        .json()
        .unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: Value = get(&server, &format!("/v2/example/core/blobs/{config_digest}"))
        .json()
        .unwrap();
    assert_eq!(config["os"], "wasip1");
    assert!(config.get("component").is_none(), "{config}");
    let layer = get(
        &server,
        &format!("/v2/example/core/blobs/{}", Digest::of(&bytes)),
    );
    assert_eq!(layer.bytes().unwrap().as_ref(), &bytes[..]);
}

#[test]
fn manifests_are_deterministic_across_requests_and_restarts() {
    let (server, _) = registry_with("oci-determinism", &["1.0.0"]);
    let fetch = |server: &TestServer| {
        let response = get(server, "/v2/example/fac/manifests/1.0.0");
        assert_eq!(response.status(), 200);
        let digest = header(&response, "docker-content-digest");
        (digest, response.bytes().unwrap())
    };
    let first = fetch(&server);
    assert_eq!(fetch(&server), first);
    let manifest: Value = serde_json::from_slice(&first.1).unwrap();
    let config_path = format!(
        "/v2/example/fac/blobs/{}",
        manifest["config"]["digest"].as_str().unwrap()
    );
    let config = get(&server, &config_path).bytes().unwrap();

    let data = server.data.clone();
    assert!(server.stop().success());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let server = TestServer::start(&data, &["--namespace", "example"]);
    assert_eq!(fetch(&server), first);
    assert_eq!(get(&server, &config_path).bytes().unwrap(), config);
}

#[test]
fn tags_are_listed_in_lexical_order_with_paging() {
    let (server, _) = registry_with("oci-tags", &["1.0.0", "0.9.0", "1.1.0-rc.1", "2.0.0"]);
    let all: Value = get(&server, "/v2/example/fac/tags/list").json().unwrap();
    assert_eq!(all["name"], "example/fac");
    assert_eq!(
        all["tags"],
        serde_json::json!(["0.9.0", "1.0.0", "1.1.0-rc.1", "2.0.0"])
    );

    let response = get(&server, "/v2/example/fac/tags/list?n=2");
    assert_eq!(response.status(), 200);
    let link = header(&response, "link");
    assert_eq!(
        link,
        "</v2/example/fac/tags/list?n=2&last=1.0.0>; rel=\"next\""
    );
    let page: Value = response.json().unwrap();
    assert_eq!(page["tags"], serde_json::json!(["0.9.0", "1.0.0"]));

    let next = &link[1..link.find('>').unwrap()];
    let response = get(&server, next);
    assert!(response.headers().get("link").is_none());
    let page: Value = response.json().unwrap();
    assert_eq!(page["tags"], serde_json::json!(["1.1.0-rc.1", "2.0.0"]));

    let page: Value = get(&server, "/v2/example/fac/tags/list?last=1.1.0-rc.1")
        .json()
        .unwrap();
    assert_eq!(page["tags"], serde_json::json!(["2.0.0"]));
    let page: Value = get(&server, "/v2/example/fac/tags/list?n=0")
        .json()
        .unwrap();
    assert_eq!(page["tags"], serde_json::json!([]));
}

#[test]
fn the_catalog_lists_every_package_with_paging() {
    let (server, _) = registry_with("oci-catalog", &["1.0.0"]);
    let client = server.client();
    for name in ["example:b-two", "example:a-one"] {
        let mut publisher = Publisher::new(name);
        publisher.publish_init(&client);
    }
    let all: Value = get(&server, "/v2/_catalog").json().unwrap();
    assert_eq!(
        all["repositories"],
        serde_json::json!(["example/a-one", "example/b-two", "example/fac"])
    );
    let response = get(&server, "/v2/_catalog?n=1");
    assert_eq!(
        header(&response, "link"),
        "</v2/_catalog?n=1&last=example/a-one>; rel=\"next\""
    );
    let page: Value = response.json().unwrap();
    assert_eq!(page["repositories"], serde_json::json!(["example/a-one"]));
    let page: Value = get(&server, "/v2/_catalog?n=5&last=example/a-one")
        .json()
        .unwrap();
    assert_eq!(
        page["repositories"],
        serde_json::json!(["example/b-two", "example/fac"])
    );
}

#[test]
fn errors_follow_the_distribution_spec() {
    let (server, _) = registry_with("oci-errors", &["1.0.0"]);
    let unknown_digest = format!("sha256:{}", "0".repeat(64));
    assert_error(
        get(&server, "/v2/example/nothing/manifests/1.0.0"),
        404,
        "NAME_UNKNOWN",
    );
    assert_error(get(&server, "/v2/other/fac/tags/list"), 404, "NAME_UNKNOWN");
    assert_error(
        get(&server, "/v2/Example/fac/manifests/1.0.0"),
        400,
        "NAME_INVALID",
    );
    assert_error(
        get(&server, "/v2/example/fac/manifests/9.9.9"),
        404,
        "MANIFEST_UNKNOWN",
    );
    assert_error(
        get(
            &server,
            &format!("/v2/example/fac/manifests/{unknown_digest}"),
        ),
        404,
        "MANIFEST_UNKNOWN",
    );
    for bad in ["sha256:xyz", "sha256:ABC", "nothing:at-all"] {
        assert_error(
            get(&server, &format!("/v2/example/fac/blobs/{bad}")),
            400,
            "DIGEST_INVALID",
        );
        assert_error(
            get(&server, &format!("/v2/example/fac/manifests/{bad}")),
            400,
            "DIGEST_INVALID",
        );
    }
    assert_error(
        get(&server, &format!("/v2/example/fac/blobs/{unknown_digest}")),
        404,
        "BLOB_UNKNOWN",
    );
    assert_error(
        get(
            &server,
            &format!("/v2/example/fac/blobs/sha512:{}", "0".repeat(128)),
        ),
        404,
        "BLOB_UNKNOWN",
    );
    // A blob of another repository is not part of this one.
    let mut other = Publisher::new("example:other");
    other.publish_init(&server.client());
    assert_error(
        get(
            &server,
            &format!(
                "/v2/example/other/blobs/{}",
                Digest::of(&fixture(COMPONENT))
            ),
        ),
        404,
        "BLOB_UNKNOWN",
    );
    assert_error(
        get(&server, "/v2/example/fac/tags/list?n=many"),
        400,
        "PAGINATION_NUMBER_INVALID",
    );
}

#[test]
fn anonymous_pushes_and_deletes_are_asked_for_credentials() {
    let (server, _) = registry_with("oci-push", &["1.0.0"]);
    let http = &server.client().http;
    let url = &server.url;
    let digest = Digest::of(&fixture(COMPONENT));
    let attempts = [
        http.post(format!("{url}/v2/example/fac/blobs/uploads/")),
        http.patch(format!("{url}/v2/example/fac/blobs/uploads/some-session")),
        http.put(format!("{url}/v2/example/fac/manifests/1.0.0")),
        http.delete(format!("{url}/v2/example/fac/manifests/1.0.0")),
        http.delete(format!("{url}/v2/example/fac/blobs/{digest}")),
    ];
    // A package repository takes writes from publisher accounts only (`oci_publish.rs`).
    for attempt in attempts {
        let response = attempt.send().unwrap();
        assert!(header(&response, "www-authenticate").starts_with("Bearer realm="));
        assert_error(response, 401, "UNAUTHORIZED");
    }
    // Nothing changed.
    assert_eq!(
        get(&server, "/v2/example/fac/manifests/1.0.0").status(),
        200
    );
}

#[test]
fn a_yank_removes_the_tag_but_keeps_the_digests_readable() {
    let data = temp_dir("oci-yank");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let mut publisher = Publisher::new("example:fac");
    publisher.publish_init(&client);
    let yanked_bytes = fixture(COMPONENT);
    publisher.publish_release(&client, "1.0.0", &yanked_bytes);
    publisher.publish_release(&client, "2.0.0", &fixture(OTHER_COMPONENT));

    let response = get(&server, "/v2/example/fac/manifests/1.0.0");
    let manifest_digest = header(&response, "docker-content-digest");
    let manifest_bytes = response.bytes().unwrap();
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();

    let yank = publisher.sign(vec![PackageEntry::Yank {
        version: "1.0.0".parse().unwrap(),
    }]);
    let (status, body) = client.publish(&publisher.name, &yank);
    assert_eq!(status, 202, "{body}");
    assert!(matches!(
        client.wait(&publisher.name, yank.record_id()),
        cairn_protocol::api::RecordState::Published { .. }
    ));

    let check = |server: &TestServer| {
        let tags: Value = get(server, "/v2/example/fac/tags/list").json().unwrap();
        assert_eq!(tags["tags"], serde_json::json!(["2.0.0"]));
        assert_error(
            get(server, "/v2/example/fac/manifests/1.0.0"),
            404,
            "MANIFEST_UNKNOWN",
        );
        let response = get(
            server,
            &format!("/v2/example/fac/manifests/{manifest_digest}"),
        );
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().unwrap(), manifest_bytes);
        let response = get(server, &format!("/v2/example/fac/blobs/{config_digest}"));
        assert_eq!(response.status(), 200);
        let layer = get(
            server,
            &format!("/v2/example/fac/blobs/{}", Digest::of(&yanked_bytes)),
        );
        assert_eq!(layer.status(), 200);
        assert_eq!(layer.bytes().unwrap().as_ref(), &yanked_bytes[..]);
    };
    check(&server);
    // After a restart the artifact of the yanked release is derived afresh, from its record.
    assert!(server.stop().success());
    let server = TestServer::start(&data, &["--namespace", "example"]);
    check(&server);
}

#[test]
fn skopeo_copies_a_release_to_an_oci_layout_byte_for_byte() {
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v skopeo"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        let message = "SKIPPED: skopeo is not installed (apt-get install -y skopeo); \
                       the OCI pull interoperability test did not run";
        assert!(std::env::var_os("CI").is_none(), "{message}, and CI is set");
        eprintln!("\n{}\n{message}\n{}\n", "!".repeat(72), "!".repeat(72));
        return;
    }
    let (server, _) = registry_with("oci-skopeo", &["1.0.0"]);
    let bytes = fixture(COMPONENT);
    let work = temp_dir("oci-skopeo-out");
    let policy = work.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let layout = work.join("layout");
    let host = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let output = std::process::Command::new("skopeo")
        .arg("--policy")
        .arg(&policy)
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{host}/example/fac:1.0.0"))
        .arg(format!("oci:{}:fac", layout.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo copy failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let digest = Digest::of(&bytes).to_string();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let copied = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(copied, bytes);
    // The manifest skopeo stored is ours, byte for byte.
    let manifest_digest = header(
        &get(&server, "/v2/example/fac/manifests/1.0.0"),
        "docker-content-digest",
    );
    let stored = std::fs::read(
        layout
            .join("blobs/sha256")
            .join(manifest_digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();
    assert_eq!(sha256(&stored), manifest_digest);

    // Back from the layout into a scratch repository, and from the package's repository to
    // another one, registry to registry: the same manifest and the same layer bytes.
    let skopeo_copy = |from: String, to: String| {
        let output = std::process::Command::new("skopeo")
            .arg("--policy")
            .arg(&policy)
            .args([
                "copy",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--dest-creds",
            ])
            .arg(format!("skopeo:{PUSH_TOKEN}"))
            .arg(&from)
            .arg(&to)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "skopeo copy {from} {to} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    skopeo_copy(
        format!("oci:{}:fac", layout.display()),
        format!("docker://{host}/scratch/fac:1.0.0"),
    );
    skopeo_copy(
        format!("docker://{host}/example/fac:1.0.0"),
        format!("docker://{host}/mirror/fac:1.0.0"),
    );
    for repository in ["scratch/fac", "mirror/fac"] {
        let response = get(&server, &format!("/v2/{repository}/manifests/1.0.0"));
        assert_eq!(response.status(), 200, "{repository}");
        assert_eq!(header(&response, "docker-content-digest"), manifest_digest);
        assert_eq!(sha256(&response.bytes().unwrap()), manifest_digest);
        let layer = get(&server, &format!("/v2/{repository}/blobs/{digest}"));
        assert_eq!(layer.status(), 200, "{repository}");
        assert_eq!(layer.bytes().unwrap().to_vec(), bytes, "{repository}");
    }
}

const SPLIT_TYPE: &str = "application/vnd.cairn.split.manifest.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

#[test]
fn the_split_manifest_is_a_referrer_of_the_release_manifest() {
    let (server, _) = registry_with("oci-referrers", &["1.0.0", "2.0.0"]);
    let bytes = fixture(COMPONENT);
    let response = get(&server, "/v2/example/fac/manifests/1.0.0");
    let subject_digest = header(&response, "docker-content-digest");
    let subject_size = response.bytes().unwrap().len();

    // The listing, unfiltered.
    let response = get(
        &server,
        &format!("/v2/example/fac/referrers/{subject_digest}"),
    );
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), INDEX_TYPE);
    assert!(response.headers().get("oci-filters-applied").is_none());
    let index: Value = response.json().unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], INDEX_TYPE);
    let listed = index["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{index}");
    let descriptor = &listed[0];
    assert_eq!(
        descriptor["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(descriptor["artifactType"], SPLIT_TYPE);

    // The referrer manifest, by digest.
    let referrer_digest = descriptor["digest"].as_str().unwrap();
    let response = get(
        &server,
        &format!("/v2/example/fac/manifests/{referrer_digest}"),
    );
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "docker-content-digest"), referrer_digest);
    assert_eq!(
        header(&response, "content-type"),
        "application/vnd.oci.image.manifest.v1+json"
    );
    let referrer_bytes = response.bytes().unwrap();
    assert_eq!(sha256(&referrer_bytes), referrer_digest);
    assert_eq!(descriptor["size"], referrer_bytes.len());
    let referrer: Value = serde_json::from_slice(&referrer_bytes).unwrap();
    assert_eq!(descriptor["annotations"], referrer["annotations"]);
    assert_eq!(referrer["schemaVersion"], 2);
    assert_eq!(referrer["artifactType"], SPLIT_TYPE);
    assert_eq!(
        referrer["subject"],
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": subject_digest,
            "size": subject_size,
        })
    );
    assert_eq!(
        referrer["config"],
        serde_json::json!({
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": sha256(b"{}"),
            "size": 2,
        })
    );
    let config = get(&server, &format!("/v2/example/fac/blobs/{}", sha256(b"{}")));
    assert_eq!(config.status(), 200);
    assert_eq!(config.bytes().unwrap().as_ref(), b"{}");

    // Its one layer is the split manifest the warg extension serves, and it verifies.
    let layers = referrer["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], SPLIT_TYPE);
    let layer_digest = layers[0]["digest"].as_str().unwrap();
    let response = get(&server, &format!("/v2/example/fac/blobs/{layer_digest}"));
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "docker-content-digest"), layer_digest);
    let layer = response.bytes().unwrap();
    assert_eq!(sha256(&layer), layer_digest);
    assert_eq!(layers[0]["size"], layer.len());
    let served = get(
        &server,
        &format!("/v1/cairn/content/{}/manifest", Digest::of(&bytes)),
    );
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().unwrap(), layer);
    let manifest = cairn_split::Manifest::from_json(&layer).unwrap();
    let split = cairn_split::split(&bytes).unwrap();
    assert_eq!(manifest.tree_digest(), split.tree_digest());
    assert_eq!(manifest.size(), bytes.len() as u64);
    assert_eq!(
        referrer["annotations"]["dev.cairn.split.tree-digest"],
        split.tree_digest().to_string()
    );

    // Filtered: by our type (`+` encoded, or left as is, which a query decodes as a space),
    // and by another.
    for spelled in [SPLIT_TYPE.replace('+', "%2B"), SPLIT_TYPE.to_owned()] {
        let response = get(
            &server,
            &format!("/v2/example/fac/referrers/{subject_digest}?artifactType={spelled}"),
        );
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "oci-filters-applied"), "artifactType");
        let filtered: Value = response.json().unwrap();
        assert_eq!(filtered, index, "{spelled}");
    }
    let response = get(
        &server,
        &format!(
            "/v2/example/fac/referrers/{subject_digest}?artifactType=application/vnd.example.sbom"
        ),
    );
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "oci-filters-applied"), "artifactType");
    let filtered: Value = response.json().unwrap();
    assert_eq!(filtered["manifests"], serde_json::json!([]));

    // The other release has its own referrer; a manifest without referrers (the referrer
    // itself) and an unknown digest get an empty index; a bad digest is a 400.
    let other = header(
        &get(&server, "/v2/example/fac/manifests/2.0.0"),
        "docker-content-digest",
    );
    let index: Value = get(&server, &format!("/v2/example/fac/referrers/{other}"))
        .json()
        .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_ne!(index["manifests"][0]["digest"], referrer_digest);
    for digest in [
        referrer_digest.to_owned(),
        format!("sha256:{}", "0".repeat(64)),
        format!("sha512:{}", "0".repeat(128)),
    ] {
        let response = get(&server, &format!("/v2/example/fac/referrers/{digest}"));
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), INDEX_TYPE);
        let index: Value = response.json().unwrap();
        assert_eq!(index["manifests"], serde_json::json!([]), "{digest}");
    }
    assert_error(
        get(&server, "/v2/example/fac/referrers/sha256:xyz"),
        400,
        "DIGEST_INVALID",
    );
    // A repository that does not exist (yet) has no referrers: an empty index, as the
    // distribution spec asks (its conformance tests check this), not NAME_UNKNOWN.
    let response = get(
        &server,
        &format!("/v2/example/none/referrers/{subject_digest}"),
    );
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), INDEX_TYPE);
    let index: Value = response.json().unwrap();
    assert_eq!(index["manifests"], serde_json::json!([]));

    // Deterministic across restarts.
    let data = server.data.clone();
    assert!(server.stop().success());
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let response = get(
        &server,
        &format!("/v2/example/fac/manifests/{referrer_digest}"),
    );
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().unwrap(), referrer_bytes);
}

#[test]
fn the_discovery_document_advertises_oci_and_warg() {
    let (server, _) = registry_with("oci-well-known", &[]);
    let response = get(&server, "/.well-known/wasm-pkg/registry.json");
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/json");
    let document: Value = response.json().unwrap();
    let url = server.url.trim_end_matches('/');
    let host = url.trim_start_matches("http://");
    assert_eq!(
        document,
        serde_json::json!({
            "preferredProtocol": "oci",
            "warg": {"url": url},
            "oci": {"registry": host},
            "ociRegistry": host,
        })
    );
}

/// The `wkg` binary: `CAIRN_WKG`, then `$CAIRN_PEERS/bin/wkg` (default `~/.cache/cairn-peers`,
/// where `.ci/run` installs it), then `PATH`.
fn find_wkg() -> Option<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    if let Some(path) = std::env::var_os("CAIRN_WKG") {
        return Some(PathBuf::from(path));
    }
    let peers = std::env::var_os("CAIRN_PEERS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/cairn-peers"))
        });
    if let Some(candidate) = peers.map(|dir| dir.join("bin/wkg")).filter(|p| p.is_file()) {
        return Some(candidate);
    }
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v wkg"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

#[test]
fn wkg_gets_a_release_byte_for_byte() {
    let Some(wkg) = find_wkg() else {
        let message = "SKIPPED: wkg is not installed (cargo install --locked --root \
                       \"$CAIRN_PEERS\" wkg@0.16.1); the wkg interoperability test did not run";
        assert!(std::env::var_os("CI").is_none(), "{message}, and CI is set");
        eprintln!("\n{}\n{message}\n{}\n", "!".repeat(72), "!".repeat(72));
        return;
    };
    let (server, _) = registry_with("oci-wkg", &["1.0.0", "1.1.0"]);
    let bytes = fixture(COMPONENT);
    let home = temp_dir("oci-wkg-home");
    let registry = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    // Only the namespace's registry, and plain HTTP for it: the rest comes from discovery.
    let config = home.join("wkg-config.toml");
    std::fs::write(
        &config,
        format!(
            "[namespace_registries]\nexample = \"{registry}\"\n\n\
             [registry.\"{registry}\".oci]\nprotocol = \"http\"\n"
        ),
    )
    .unwrap();
    let output = home.join("fac.wasm");
    let run = std::process::Command::new(&wkg)
        .args(["get", "example:fac@1.0.0", "--overwrite", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&output)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env_remove("WKG_OCI_INSECURE")
        .env_remove("WKG_REGISTRY")
        .env_remove("WKG_CACHE_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "wkg get failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(std::fs::read(&output).unwrap(), bytes);
}

/// Whether `python3` can import oras-py; if not, the test says so loudly (and fails in CI).
fn oras_available() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import oras.client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        let message = "SKIPPED: oras-py is not installed (pip install oras); \
                       the oras interoperability test did not run";
        assert!(std::env::var_os("CI").is_none(), "{message}, and CI is set");
        eprintln!("\n{}\n{message}\n{}\n", "!".repeat(72), "!".repeat(72));
    }
    found
}

#[test]
fn oras_pushes_and_pulls_a_generic_artifact() {
    if !oras_available() {
        return;
    }
    let (server, _) = registry_with("oci-oras", &["1.0.0"]);
    let work = temp_dir("oci-oras-work");
    let notes = b"notes pushed by oras\n".to_vec();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let config = br#"{"purpose":"interop"}"#.to_vec();
    std::fs::write(work.join("notes.txt"), &notes).unwrap();
    std::fs::write(work.join("data.bin"), &data).unwrap();
    std::fs::write(work.join("config.json"), &config).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oras/push_pull.py");
    let host = server.url.trim_start_matches("http://").to_owned();
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(&host)
        .arg(PUSH_TOKEN)
        .arg(&work)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "oras-py failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["push_status"], 201);
    assert_eq!(seen["tags"], serde_json::json!(["v1"]));
    let manifest = &seen["manifest"];
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.example.config.v1+json"
    );
    assert_eq!(manifest["config"]["digest"], sha256(&config));
    assert_eq!(manifest["annotations"]["org.example.purpose"], "interop");
    let layers: Vec<(String, String)> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap().to_owned(),
                l["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        layers,
        [
            ("text/plain".to_owned(), sha256(&notes)),
            ("application/vnd.example.data".to_owned(), sha256(&data)),
        ]
    );
    // What oras pulled is what it pushed, byte for byte.
    assert_eq!(
        seen["pulled"],
        serde_json::json!(["pulled/data.bin", "pulled/notes.txt"])
    );
    assert_eq!(std::fs::read(work.join("pulled/notes.txt")).unwrap(), notes);
    assert_eq!(std::fs::read(work.join("pulled/data.bin")).unwrap(), data);
    // The manifest is stored as pushed: its digest is the one the push answered.
    let response = get(&server, "/v2/scratch/oras/manifests/v1");
    assert_eq!(
        header(&response, "docker-content-digest"),
        seen["push_digest"].as_str().unwrap()
    );
    // A released component pulls as its file, named by the layer's title.
    assert_eq!(seen["release"], serde_json::json!(["release/fac.wasm"]));
    assert_eq!(
        std::fs::read(work.join("release/fac.wasm")).unwrap(),
        fixture(COMPONENT)
    );
}
