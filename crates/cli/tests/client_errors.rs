//! Errors a person can act on, as transcripts: `tests/client-errors/NAME.cmd` runs against a
//! `cairn serve` started for it, and what every command prints must equal `NAME.out`.
//!
//! In a script, `cairn ARGS` runs as the user alice and `USER$ cairn ARGS` as USER (each with
//! their own keys and trusted state); `write FILE TEXT...` writes a file. `{registry}` is the
//! registry (every `cairn` line gets `--registry {registry}` unless it names one), `{down}` a
//! port nobody listens on, `{key:USER}` and `{key-id:USER}` a user's public key and key id, `{web}` a web server that is not a registry, `{fixtures}` the
//! fixtures folder, `{tmp}` a fresh folder. In the transcript, digests, key ids, public keys
//! and addresses are replaced by placeholders. `BLESS=1` rewrites the `.out` files.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::*;

/// A web server on loopback that answers every request with a 404 page, as a misconfigured
/// URL would; it stops with the test process.
fn start_web_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body = "<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// Replaces what differs from run to run with placeholders.
fn normalise(text: &str, replacements: &[(String, &str)]) -> String {
    let mut text = text.to_owned();
    for (from, to) in replacements {
        text = text.replace(from.as_str(), to);
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        if let Some(hex) = rest.strip_prefix("sha256:") {
            let n = hex.chars().take_while(|c| c.is_ascii_hexdigit()).count();
            if n == 64 {
                out.push_str("sha256:<hex>");
                rest = &hex[64..];
                continue;
            }
        }
        if let Some(key) = rest.strip_prefix("ecdsa-p256:") {
            let n = key
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
                .count();
            if n >= 40 {
                out.push_str("ecdsa-p256:<key>");
                rest = &key[n..];
                continue;
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Replaces `{key:USER}` and `{key-id:USER}` with the public key and the key id of USER's
/// default key.
fn with_user_keys(text: &str, tmp: &Path) -> String {
    let mut text = text.to_owned();
    while let Some(start) = text.find("{key") {
        let end = start + text[start..].find('}').expect("a closed placeholder");
        let (field, user) = text[start + 1..end].split_once(':').expect("{key:USER}");
        let home = tmp.join("users").join(user);
        let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["key", "info", "--json"])
            .env("CAIRN_CONFIG_DIR", home.join("config"))
            .env_remove("CAIRN_KEY")
            .output()
            .unwrap();
        let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let value = match field {
            "key" => info["publicKey"].as_str().unwrap(),
            "key-id" => info["keyId"].as_str().unwrap(),
            other => panic!("unknown placeholder {{{other}:...}}"),
        };
        text.replace_range(start..=end, value);
    }
    text
}

fn run_script(script: &Path, tmp: &Path) -> String {
    let server = TestServer::start(&tmp.join("registry"), &["--namespace", "example"]);
    let web = start_web_server();
    let down = "http://127.0.0.1:1".to_owned();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let fixtures = fixtures.canonicalize().unwrap();
    let substitutions = [
        ("{registry}", server.url.clone()),
        ("{web}", web.clone()),
        ("{down}", down.clone()),
        ("{fixtures}", fixtures.display().to_string()),
        ("{tmp}", tmp.display().to_string()),
    ];
    // Longest first, so that no placeholder eats part of another's text.
    let mut back: Vec<(String, &str)> = substitutions
        .iter()
        .map(|(name, value)| (value.clone(), *name))
        .collect();
    back.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
    let mut transcript = String::new();
    for line in std::fs::read_to_string(script).unwrap().lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        transcript.push_str(&format!("$ {line}\n"));
        let mut text = line.to_owned();
        for (name, value) in &substitutions {
            text = text.replace(name, value);
        }
        text = with_user_keys(&text, tmp);
        let (user, command) = match text.split_once("$ ") {
            Some((user, command)) if !user.contains(' ') => (user.to_owned(), command.to_owned()),
            _ => ("alice".to_owned(), text.clone()),
        };
        let words: Vec<&str> = command.split_whitespace().collect();
        match words[0] {
            "write" => {
                std::fs::write(words[1], words[2..].join(" ")).unwrap();
            }
            "cairn" => {
                let home: PathBuf = tmp.join("users").join(&user);
                let mut args: Vec<&str> = words[1..].to_vec();
                let is_client = !matches!(args.first(), Some(&"key"));
                if is_client && !args.contains(&"--registry") {
                    args.extend(["--registry", server.url.as_str()]);
                }
                let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
                    .args(&args)
                    .env("CAIRN_CONFIG_DIR", home.join("config"))
                    .env("CAIRN_DATA_DIR", home.join("data"))
                    .env_remove("CAIRN_KEY")
                    .env_remove("CAIRN_REGISTRY")
                    .env_remove("CAIRN_TOKEN")
                    .env_remove("CAIRN_CA_CERT")
                    .env("RUST_BACKTRACE", "0")
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                let clean = |bytes: &[u8]| normalise(&String::from_utf8_lossy(bytes), &back);
                transcript.push_str(&clean(&output.stdout));
                for line in clean(&output.stderr).lines() {
                    transcript.push_str(&format!("stderr: {line}\n"));
                }
                if !output.status.success() {
                    transcript
                        .push_str(&format!("[exit {}]\n", output.status.code().unwrap_or(-1)));
                }
            }
            other => panic!("{}: unknown command {other}", script.display()),
        }
    }
    transcript
}

#[test]
fn client_error_transcripts_match() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/client-errors");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cmd"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for script in &scripts {
        let name = script.file_stem().unwrap().to_string_lossy().into_owned();
        let tmp = temp_dir(&format!("client-errors-{name}"));
        let transcript = run_script(script, &tmp);
        let expected_path = script.with_extension("out");
        if bless {
            std::fs::write(&expected_path, &transcript).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != transcript {
            failures.push(format!(
                "{} differs from {}:\n--- expected\n{expected}\n--- got\n{transcript}",
                script.display(),
                expected_path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(BLESS=1 rewrites the .out files)",
        failures.join("\n")
    );
}
