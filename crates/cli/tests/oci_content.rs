//! `cairn serve --content oci://...`: content blobs kept in a real OCI distribution registry
//! (Debian's `docker-registry`, the CNCF distribution registry, started here on loopback).
//! Publishing, fetching through the warg content URLs and OCI pulls, what is stored where, a
//! restart without the flag, the audit, basic auth, and the errors an operator can meet.
//!
//! `docker-registry` is found as `CAIRN_DOCKER_REGISTRY`, else on `PATH`. Without it every test
//! prints that it skipped, and fails when `CI` is set.

mod docker_registry;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use docker_registry::{docker_registry_binary, free_port, DockerRegistry, RegistryOptions};

use cairn_protocol::Digest;
use cairn_store::{BlobDigest, BlobStore, OciContentStore};
use serde_json::Value;
use support::*;

use docker_registry::REPOSITORY;

/// A component holding `module` as its only core module, preceded by a custom section named
/// `tag` so that two such components differ while sharing the module.
fn component_around(module: &[u8], tag: &str) -> Vec<u8> {
    use cairn_protocol::prefix::write_uleb;
    let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
    let mut custom = Vec::new();
    write_uleb(&mut custom, tag.len() as u64);
    custom.extend_from_slice(tag.as_bytes());
    bytes.push(0);
    write_uleb(&mut bytes, custom.len() as u64);
    bytes.extend_from_slice(&custom);
    bytes.push(1);
    write_uleb(&mut bytes, module.len() as u64);
    bytes.extend_from_slice(module);
    bytes
}

/// The digests of the blobs of a content's split manifest, as cairn serves it.
fn split_blobs(server: &TestServer, content: &[u8]) -> Vec<String> {
    let response = server.client().get(&format!(
        "v1/cairn/content/{}/manifest",
        Digest::of(content)
    ));
    assert_eq!(response.status(), 200);
    let manifest: Value = response.json().unwrap();
    manifest["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|blob| blob["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// Fetches `content` through the warg content source URL and as the layer of the OCI
/// artifact `ns/name:version`, and checks both are the published bytes.
fn assert_served(server: &TestServer, ns_name: &str, version: &str, content: &[u8]) {
    let client = server.client();
    let digest = Digest::of(content);
    let sources: Value = client.get(&format!("v1/content/{digest}")).json().unwrap();
    let url = sources["contentSources"][digest.to_string()][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let fetched = client.http.get(&url).send().unwrap();
    assert_eq!(fetched.status(), 200, "{url}");
    assert!(
        fetched.bytes().unwrap().as_ref() == content,
        "{url} is not the published bytes"
    );

    let manifest: Value = client
        .get(&format!("v2/{ns_name}/manifests/{version}"))
        .json()
        .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(layer, digest.to_string());
    let pulled = client.get(&format!("v2/{ns_name}/blobs/{layer}"));
    assert_eq!(pulled.status(), 200);
    assert!(
        pulled.bytes().unwrap().as_ref() == content,
        "the OCI layer of {ns_name}:{version} is not the published bytes"
    );
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.unwrap().path())
        .flat_map(|path| match path.is_dir() {
            true => files_under(&path),
            false => vec![path],
        })
        .collect()
}

#[test]
fn content_in_an_oci_registry_is_served_byte_for_byte_and_survives_a_restart() {
    let Some(binary) = docker_registry_binary("the OCI content store test") else {
        return;
    };
    let registry = DockerRegistry::start(
        &binary,
        "oci-content-registry",
        RegistryOptions {
            deletes: true,
            ..Default::default()
        },
    );
    let data = temp_dir("oci-content-data");
    let location = registry.content_location();
    let server = TestServer::start(&data, &["--namespace", "example", "--content", &location]);
    let client = server.client();

    let module = fixture("r04-extism-runtime.core.wasm");
    let first = component_around(&module, "first");
    let second = component_around(&module, "second");
    let calc = fixture("b03-rs-calc.wac.component.wasm");
    let published = [
        ("example/first", first.clone()),
        ("example/second", second.clone()),
        ("example/calc", calc.clone()),
    ];
    for (ns_name, bytes) in &published {
        let mut publisher = Publisher::new(&ns_name.replace('/', ":"));
        publisher.publish_init(&client);
        publisher.publish_release(&client, "1.0.0", bytes);
    }
    for (ns_name, bytes) in &published {
        assert_served(&server, ns_name, "1.0.0", bytes);
    }

    // Every blob of every split is in the registry, and nowhere else: as it is, or compressed
    // (a zstd frame, found through the manifest tagged for the blob).
    let mut distinct = std::collections::BTreeSet::new();
    let mut compressed = 0;
    for (_, bytes) in &published {
        for digest in split_blobs(&server, bytes) {
            let stored = registry
                .kept_blob(&digest)
                .unwrap_or_else(|| panic!("{digest} is not in the registry"));
            assert_eq!(Digest::of(&stored).to_string(), digest);
            if distinct.insert(digest.clone()) && registry.blob(&digest).is_none() {
                compressed += 1;
            }
        }
    }
    assert!(compressed >= 2, "{compressed} blobs stored compressed");
    let module_digest = Digest::of(&module).to_string();
    assert!(split_blobs(&server, &first).contains(&module_digest));
    assert!(split_blobs(&server, &second).contains(&module_digest));
    // The shared module is stored, and was uploaded, once: one blob (or frame) per distinct
    // digest, the manifests of the frames, and the empty config they share.
    assert_eq!(
        registry.stored_blob_count(),
        distinct.len() + compressed + 1
    );
    assert_eq!(registry.upload_count(), distinct.len() + 1);
    assert!(
        files_under(&data.join("content/blobs")).is_empty(),
        "content blobs in the data directory: {:?}",
        files_under(&data.join("content/blobs"))
    );
    let record = std::fs::read_to_string(data.join("content-location")).unwrap();
    assert_eq!(record.trim(), location);

    // A restart without --content uses the recorded store.
    assert!(server.stop().success());
    let server = TestServer::start(&data, &["--namespace", "example"]);
    for (ns_name, bytes) in &published {
        assert_served(&server, ns_name, "1.0.0", bytes);
    }
    assert!(server.stop().success());

    let (ok, stdout, stderr) = cairn(&["audit", "--data", data.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("3 contents re-joined"), "{stdout}");
}

#[test]
fn a_start_naming_another_content_store_than_the_recorded_one_is_refused() {
    let Some(binary) = docker_registry_binary("the OCI content store test") else {
        return;
    };
    let registry = DockerRegistry::start(&binary, "oci-content-other", Default::default());
    let data = temp_dir("oci-content-other-data");
    let location = registry.content_location();
    let server = TestServer::start(&data, &["--namespace", "example", "--content", &location]);
    assert!(server.stop().success());
    let data_arg = data.to_str().unwrap();
    let other_repository = format!("oci://127.0.0.1:{}/cairn/elsewhere", registry.port);
    let local_directory = data.join("content");
    for other in [other_repository.as_str(), local_directory.to_str().unwrap()] {
        let (ok, _, stderr) = cairn(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data_arg,
            "--content",
            other,
        ]);
        assert!(!ok, "started with {other}");
        assert!(
            stderr.contains("refusing") && stderr.contains(&location) && stderr.contains(other),
            "{stderr}"
        );
    }
    // The same store named with its explicit transport is the same store.
    let explicit = format!("oci+http://127.0.0.1:{}/{REPOSITORY}", registry.port);
    let server = TestServer::start(&data, &["--content", &explicit]);
    assert!(server.stop().success());

    // And a registry created before the record existed keeps its content directory.
    let legacy = temp_dir("oci-content-legacy-data");
    let server = TestServer::start(&legacy, &[]);
    assert!(server.stop().success());
    std::fs::remove_file(legacy.join("content-location")).unwrap();
    let (ok, _, stderr) = cairn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        legacy.to_str().unwrap(),
        "--content",
        &location,
    ]);
    assert!(!ok && stderr.contains("refusing"), "{stderr}");
}

#[test]
fn a_content_registry_that_is_down_stops_the_start_with_a_clear_error() {
    let data = temp_dir("oci-content-down");
    let location = format!("oci://127.0.0.1:{}/{REPOSITORY}", free_port());
    let (ok, _, stderr) = cairn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
        "--content",
        &location,
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot reach the OCI registry") && stderr.contains(&location),
        "{stderr}"
    );
    // Nothing was recorded: a corrected location works on the next start.
    assert!(!data.join("content-location").exists());
    assert!(!data.join("cairn.db").exists());

    let (ok, _, stderr) = cairn(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--content",
        "gs://bucket/content",
    ]);
    assert!(
        !ok && stderr.contains("unknown content store scheme"),
        "{stderr}"
    );
    // An S3 endpoint that does not answer (on loopback, with credentials given, so that no
    // other place is asked for them).
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .args(["--content", "s3://bucket/content"])
        .env("AWS_ENDPOINT", &endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "id")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .output()
        .unwrap();
    let (ok, _, stderr) = outcome(output);
    assert!(
        !ok && stderr.contains("cannot use the content store s3://bucket/content")
            && stderr.contains("AWS_ENDPOINT"),
        "{stderr}"
    );
    assert!(!data.join("content-location").exists());
}

#[test]
fn a_mistyped_or_foreign_content_location_is_an_error_that_never_shows_the_password() {
    // `--listen` cannot be bound, so that a location wrongly taken for a directory fails
    // too (without starting a server), only later and with another error.
    let data = temp_dir("oci-content-mistyped");
    for location in [
        "oci:/cairn:Zq9secret@127.0.0.1:5000/cairn/content",
        "OCI+ftp://cairn:Zq9secret@127.0.0.1:5000/cairn/content",
        "https://cairn:Zq9secret@127.0.0.1:5000/cairn/content",
        "oci://cairn:Zq9/secret@127.0.0.1:5000/cairn/content",
    ] {
        let (ok, _, stderr) = cairn(&[
            "serve",
            "--listen",
            "not-an-address",
            "--data",
            data.to_str().unwrap(),
            "--content",
            location,
        ]);
        assert!(!ok, "{location}");
        assert!(stderr.contains("invalid --content"), "{location}: {stderr}");
        assert!(
            !stderr.contains("Zq9") && !stderr.contains("secret"),
            "the password is printed: {stderr}"
        );
        assert!(!data.join("content-location").exists(), "{location}");
    }
}

/// An htpasswd line for `user` and `password`, hashed with bcrypt by the C library's
/// `crypt(3)` through Perl (libxcrypt knows `$2b$`), or `None` if that is not available.
fn htpasswd_line(user: &str, password: &str) -> Option<String> {
    let output = Command::new("perl")
        .args([
            "-e",
            "print crypt($ARGV[0], '$2b$05$' . 'cairntestsaltcairntest')",
            password,
        ])
        .output()
        .ok()?;
    let hash = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && hash.starts_with("$2b$05$") && hash.len() == 60)
        .then(|| format!("{user}:{hash}\n"))
}

#[test]
fn basic_auth_credentials_from_the_location_or_the_environment_reach_the_registry() {
    let Some(binary) = docker_registry_binary("the OCI content store test") else {
        return;
    };
    let Some(htpasswd) = htpasswd_line("cairn", "s3cret/pass") else {
        let message = "SKIPPED: no bcrypt through perl's crypt(3); the basic auth case did not run";
        assert!(std::env::var_os("CI").is_none(), "{message}, and CI is set");
        eprintln!("\n{}\n{message}\n{}\n", "!".repeat(72), "!".repeat(72));
        return;
    };
    let registry = DockerRegistry::start(
        &binary,
        "oci-content-auth",
        RegistryOptions {
            deletes: true,
            htpasswd: Some(htpasswd),
        },
    );
    let data = temp_dir("oci-content-auth-data");
    let data_arg = data.to_str().unwrap();
    let with_password = |password: &str| {
        format!(
            "oci://cairn:{password}@127.0.0.1:{}/{REPOSITORY}",
            registry.port
        )
    };

    let (ok, _, stderr) = cairn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data_arg,
        "--content",
        &registry.content_location(),
    ]);
    assert!(!ok && stderr.contains("asks for credentials"), "{stderr}");
    let (ok, _, stderr) = cairn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data_arg,
        "--content",
        &with_password("wrong"),
    ]);
    assert!(!ok && stderr.contains("refused"), "{stderr}");
    assert!(
        !stderr.contains("wrong"),
        "the password is printed: {stderr}"
    );

    let location = with_password("s3cret%2Fpass");
    let server = TestServer::start(&data, &["--namespace", "example", "--content", &location]);
    let bytes = fixture("b01-fac.component.wasm");
    let mut publisher = Publisher::new("example:fac");
    publisher.publish_init(&server.client());
    publisher.publish_release(&server.client(), "1.0.0", &bytes);
    assert_served(&server, "example/fac", "1.0.0", &bytes);
    assert!(server.stop().success());
    let record = std::fs::read_to_string(data.join("content-location")).unwrap();
    assert!(!record.contains("s3cret"), "credentials recorded: {record}");

    // Later runs take the credentials from the environment.
    let audit = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["audit", "--data", data_arg])
        .env("CAIRN_CONTENT_USERNAME", "cairn")
        .env("CAIRN_CONTENT_PASSWORD", "s3cret/pass")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success() && stdout.contains("1 contents re-joined"),
        "{stdout}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
}

fn blob_digest(bytes: &[u8]) -> BlobDigest {
    Digest::of(bytes).to_string().parse().unwrap()
}

#[test]
fn the_store_puts_heads_streams_and_deletes_blobs() {
    let Some(binary) = docker_registry_binary("the OCI content store test") else {
        return;
    };
    let registry = DockerRegistry::start(
        &binary,
        "oci-content-store",
        RegistryOptions {
            deletes: true,
            ..Default::default()
        },
    );
    let store = OciContentStore::new(registry.content_location().parse().unwrap()).unwrap();
    store.ping().unwrap();
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = blob_digest(&bytes);
    assert!(!store.has(&digest).unwrap());
    assert_eq!(store.size(&digest).unwrap(), None);
    let error = match store.open(&digest) {
        Ok(_) => panic!("opened a missing blob"),
        Err(error) => error,
    };
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    assert!(error.to_string().contains("BLOB_UNKNOWN"), "{error}");

    store.put(&digest, &bytes).unwrap();
    store.put(&digest, &bytes).unwrap();
    // Kept compressed: its frame and the empty config of the frame's manifest, once.
    assert_eq!(
        registry.upload_count(),
        2,
        "a stored blob was uploaded again"
    );
    assert_eq!(registry.blob(&digest.to_string()), None);
    // What decompresses from a frame is hashed until a read has seen it match the blob.
    assert!(!store.known_intact(&digest));
    store.mark_intact(&digest);
    assert!(store.known_intact(&digest));
    assert_eq!(registry.kept_blob(&digest.to_string()), Some(bytes.clone()));
    assert!(store.has(&digest).unwrap());
    assert_eq!(store.size(&digest).unwrap(), Some(bytes.len() as u64));
    let mut read = Vec::new();
    std::io::Read::read_to_end(&mut store.open(&digest).unwrap(), &mut read).unwrap();
    assert!(read == bytes);

    // A file is streamed from disk.
    let file = temp_dir("oci-content-store-file").join("blob");
    let file_bytes = b"a blob uploaded from a file".to_vec();
    std::fs::write(&file, &file_bytes).unwrap();
    let file_digest = blob_digest(&file_bytes);
    store.put_file(&file_digest, &file).unwrap();
    assert_eq!(registry.blob(&file_digest.to_string()), Some(file_bytes));

    store.delete(&digest).unwrap();
    assert!(!store.has(&digest).unwrap());
    store.delete(&digest).unwrap();
}

#[test]
fn a_registry_with_deletes_disabled_keeps_the_blob_without_failing() {
    let Some(binary) = docker_registry_binary("the OCI content store test") else {
        return;
    };
    let registry = DockerRegistry::start(&binary, "oci-content-nodelete", Default::default());
    let store = OciContentStore::new(registry.content_location().parse().unwrap()).unwrap();
    let bytes = b"kept".to_vec();
    let digest = blob_digest(&bytes);
    store.put(&digest, &bytes).unwrap();
    store.delete(&digest).unwrap();
    assert!(store.has(&digest).unwrap());
}

#[test]
fn the_bearer_token_flow_of_a_registry_with_a_token_service_is_followed() {
    // cairn itself, with pushes to scratch repositories enabled, is a registry with a token
    // service like ghcr.io: `401` with `WWW-Authenticate: Bearer realm=...`, and a realm that
    // trades the basic credentials for a token.
    let upstream = TestServer::start(
        &temp_dir("oci-content-token-upstream"),
        &["--oci-push-token", "upstream-secret"],
    );
    let authority = upstream.url.trim_start_matches("http://").to_owned();
    let data = temp_dir("oci-content-token-data");
    let data_arg = data.to_str().unwrap();

    let (ok, _, stderr) = cairn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data_arg,
        "--content",
        &format!("oci://bot:wrong@{authority}/scratch/content"),
    ]);
    assert!(!ok && stderr.contains("refused"), "{stderr}");

    let location = format!("oci://bot:upstream-secret@{authority}/scratch/content");
    let server = TestServer::start(&data, &["--namespace", "example", "--content", &location]);
    let bytes = fixture("b03-rs-calc.wac.component.wasm");
    let mut publisher = Publisher::new("example:calc");
    publisher.publish_init(&server.client());
    publisher.publish_release(&server.client(), "1.0.0", &bytes);
    assert_served(&server, "example/calc", "1.0.0", &bytes);
    // The blobs are in the upstream's scratch repository, as they are or compressed.
    for digest in split_blobs(&server, &bytes) {
        let kept = docker_registry::kept_blob(&digest, |path| {
            let response = upstream.client().get(&format!("v2/scratch/content/{path}"));
            (response.status() == 200).then(|| response.bytes().unwrap().to_vec())
        })
        .unwrap_or_else(|| panic!("{digest} is not upstream"));
        assert_eq!(Digest::of(&kept).to_string(), digest);
    }
    assert!(server.stop().success());

    // Credentials from the environment, for a later run without them in the location.
    let audit = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["audit", "--data", data_arg])
        .env("CAIRN_CONTENT_USERNAME", "bot")
        .env("CAIRN_CONTENT_PASSWORD", "upstream-secret")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success() && stdout.contains("1 contents re-joined"),
        "{stdout}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
}

#[test]
fn oci_pushes_to_scratch_repositories_keep_their_blobs_in_the_content_registry() {
    let Some(binary) = docker_registry_binary("the OCI content store push test") else {
        return;
    };
    let registry = DockerRegistry::start(&binary, "oci-content-push", RegistryOptions::default());
    let data = temp_dir("oci-content-push-data");
    let location = registry.content_location();
    let token = "push-token";
    let server = TestServer::start(&data, &["--content", &location, "--oci-push-token", token]);
    let http = &server.client().http;
    let sha256 = |bytes: &[u8]| Digest::of(bytes).to_string();
    // A blob in chunks, a config, and a manifest naming both, pushed through cairn.
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let started = http
        .post(format!("{}/v2/scratch/thing/blobs/uploads/", server.url))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(started.status(), 202);
    let location_header = header(&started, "location");
    let patched = http
        .patch(format!("{}{location_header}", server.url))
        .bearer_auth(token)
        .header("content-range", format!("0-{}", layer.len() - 1))
        .body(layer.clone())
        .send()
        .unwrap();
    assert_eq!(patched.status(), 202);
    let closed = http
        .put(format!(
            "{}{}?digest={}",
            server.url,
            header(&patched, "location"),
            sha256(&layer)
        ))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(closed.status(), 201);
    let config = b"{}".to_vec();
    let single = http
        .post(format!(
            "{}/v2/scratch/thing/blobs/uploads/?digest={}",
            server.url,
            sha256(&config)
        ))
        .bearer_auth(token)
        .body(config.clone())
        .send()
        .unwrap();
    assert_eq!(single.status(), 201);
    // Both are in the content registry, under cairn's repository there.
    for bytes in [&layer, &config] {
        let stored = http
            .get(format!(
                "http://127.0.0.1:{}/v2/{REPOSITORY}/blobs/{}",
                registry.port,
                sha256(bytes)
            ))
            .send()
            .unwrap();
        assert_eq!(stored.status(), 200);
        assert_eq!(stored.bytes().unwrap().to_vec(), *bytes);
    }
    // And cairn serves them back, whole and in a range.
    let blob_url = format!("{}/v2/scratch/thing/blobs/{}", server.url, sha256(&layer));
    assert_eq!(
        http.get(&blob_url)
            .send()
            .unwrap()
            .bytes()
            .unwrap()
            .to_vec(),
        layer
    );
    let ranged = http
        .get(&blob_url)
        .header("range", "bytes=100000-100009")
        .send()
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().unwrap().to_vec(), layer[100_000..100_010]);
    // Nothing of them is kept in the data directory (upload sessions are gone too).
    let local: Vec<PathBuf> = files_under(&data.join("content"));
    assert!(
        local
            .iter()
            .all(|path| !path.to_string_lossy().contains("blobs")),
        "{local:?}"
    );
}

/// Every encoding round-trips through a content store in an OCI registry, byte for byte: each
/// blob as it is, in zstd (the frame kept in the registry) and in gzip; a patch between two
/// builds of one application; the whole file and the OCI layer as they are, in zstd and in
/// gzip.
#[test]
fn every_encoding_round_trips_through_an_oci_content_store() {
    let Some(binary) = docker_registry_binary("the OCI content store test") else {
        return;
    };
    let registry = DockerRegistry::start(&binary, "oci-content-encodings", Default::default());
    let data = temp_dir("oci-content-encodings");
    let location = registry.content_location();
    let server = TestServer::start(&data, &["--namespace", "example", "--content", &location]);
    let client = server.client();
    let (first, second) = (
        fixture("greeter-1.component.wasm"),
        fixture("greeter-2.component.wasm"),
    );
    let mut publisher = Publisher::new("example:greeter");
    publisher.publish_init(&client);
    publisher.publish_release(&client, "1.0.0", &first);
    publisher.publish_release(&client, "1.1.0", &second);

    let get = |path: &str, accept: Option<&str>| {
        let mut request = client.http.get(format!("{}/{path}", server.url));
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        let response = request.send().unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let encoding = response
            .headers()
            .get("content-encoding")
            .map(|value| value.to_str().unwrap().to_owned());
        let patch_from = response
            .headers()
            .get("cairn-patch-from")
            .map(|value| value.to_str().unwrap().to_owned());
        (encoding, patch_from, response.bytes().unwrap().to_vec())
    };
    let decode = |encoding: Option<&str>, body: &[u8]| match encoding {
        None => body.to_vec(),
        Some("zstd") => zstd::decode_all(body).unwrap(),
        Some("gzip") => {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut bytes)
                .unwrap();
            bytes
        }
        Some(other) => panic!("unexpected encoding {other}"),
    };

    let split = cairn_split::split(&second).unwrap();
    let mut compressed = 0;
    for blob in split.blobs() {
        for accept in [None, Some("zstd"), Some("gzip")] {
            let (encoding, _, body) = get(&format!("v1/cairn/blobs/{}", blob.digest), accept);
            compressed += usize::from(encoding.as_deref() == Some("zstd"));
            assert_eq!(decode(encoding.as_deref(), &body), blob.bytes.as_ref());
        }
    }
    assert!(compressed >= 1);

    // The module that changed, as a patch against the one of 1.0.0.
    let old = cairn_split::split(&first).unwrap();
    let largest = |split: &cairn_split::Split<'_>| {
        split
            .blobs()
            .iter()
            .max_by_key(|blob| blob.bytes.len())
            .map(|blob| (blob.digest, blob.bytes.to_vec()))
            .unwrap()
    };
    let ((new_digest, new_bytes), (old_digest, old_bytes)) = (largest(&split), largest(&old));
    assert_ne!(new_digest, old_digest);
    let (_, patch_from, patch) = get(
        &format!("v1/cairn/blobs/{new_digest}/patch?from={old_digest}"),
        None,
    );
    assert_eq!(patch_from, Some(old_digest.to_string()));
    assert!(patch.len() < new_bytes.len() / 20, "{} bytes", patch.len());
    let mut patched = Vec::new();
    std::io::Read::read_to_end(
        &mut zstd::stream::read::Decoder::with_ref_prefix(&patch[..], &old_bytes).unwrap(),
        &mut patched,
    )
    .unwrap();
    assert_eq!(patched, new_bytes);

    // The whole file and the OCI layer.
    let digest = Digest::of(&second).to_string();
    for accept in [None, Some("zstd"), Some("gzip")] {
        let path = format!("content/{}", digest.replace(':', "-"));
        let (encoding, _, body) = get(&path, accept);
        assert_eq!(encoding.as_deref(), accept, "{path}");
        assert_eq!(decode(encoding.as_deref(), &body), second);
        let (encoding, _, body) = get(&format!("v2/example/greeter/blobs/{digest}"), accept);
        assert_eq!(decode(encoding.as_deref(), &body), second);
    }
}

/// `/readyz` says when the content registry cannot be reached, and is ready again with it.
#[test]
fn readiness_follows_the_content_registry() {
    let Some(binary) = docker_registry_binary("the OCI content store test") else {
        return;
    };
    let registry = DockerRegistry::start(&binary, "oci-content-readiness", Default::default());
    let data = temp_dir("oci-content-readiness");
    let location = registry.content_location();
    let server = TestServer::start(&data, &["--namespace", "example", "--content", &location]);
    let client = server.client();
    assert_eq!(client.get("readyz").status(), 200);
    drop(registry);
    let answer = client.get("readyz");
    assert_eq!(answer.status(), 503);
    let readiness: Value = answer.json().unwrap();
    assert_eq!(readiness["ready"], false);
    assert_eq!(readiness["database"], "ok");
    let content = readiness["content"].as_str().unwrap();
    assert!(
        content.contains("cannot reach the OCI registry"),
        "{content}"
    );
    // The process itself is alive.
    assert_eq!(client.get("healthz").status(), 200);
}
