//! A registry behind a TLS proxy (`socat` terminating TLS with a certificate signed by a CA
//! made here, `cairn serve --base-url https://...` behind it): the client refuses the
//! certificate with an error that names `--ca-cert`, and trusts it with `--ca-cert FILE`,
//! `CAIRN_CA_CERT` or `SSL_CERT_FILE`; publish and fetch go through it.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A `socat` TLS proxy, killed by its PID when dropped.
struct TlsProxy {
    child: Child,
    port: u16,
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tools_present() -> bool {
    ["socat", "openssl"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate it signs for 127.0.0.1 (`server.pem`,
/// `server.key`), in `dir`.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=cairn test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// Starts `socat` terminating TLS on a free loopback port and forwarding to `backend`.
fn start_proxy(dir: &Path, port: u16, backend: &str) -> TlsProxy {
    let backend = backend.trim_start_matches("http://");
    let child = Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        ))
        .arg(format!("TCP:{backend}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start socat");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "socat did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsProxy { child, port }
}

/// Runs `cairn ARGS` as `user` with `env` set: (success, everything it printed).
fn run(user: &CliUser, args: &[&str], env: &[(&str, &Path)]) -> (bool, String) {
    let mut command = user.command(env!("CARGO_BIN_EXE_cairn"));
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn a_registry_behind_a_tls_proxy_is_trusted_with_its_ca() {
    if !tools_present() {
        let message = "SKIPPED: socat or openssl is not installed; the TLS test did not run";
        assert!(std::env::var_os("CI").is_none(), "{message}, and CI is set");
        eprintln!("{message}");
        return;
    }
    let dir = temp_dir("tls");
    make_certificates(&dir);
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{}", free_port());
    let server = TestServer::start(
        &dir.join("registry"),
        &[
            "--namespace",
            "example",
            "--base-url",
            &url,
            "--listen",
            &listen,
        ],
    );
    assert_eq!(server.url, url);
    let proxy = start_proxy(&dir, port, &server.local_url);
    assert_eq!(proxy.port, port);
    let alice = CliUser::new(&dir, "alice");
    let ca = dir.join("ca.pem");

    // Not trusted: one clear error that says what to do.
    let (ok, text) = run(&alice, &["update", "--registry", &url], &[]);
    assert!(!ok, "{text}");
    eprintln!("without --ca-cert: {text}");
    assert!(
        text.contains(&format!("the TLS certificate of {url} is not trusted")),
        "{text}"
    );
    assert_eq!(text.matches("127.0.0.1").count(), 1, "the URL once: {text}");
    assert_eq!(text.matches("--ca-cert FILE").count(), 1, "{text}");

    // `--ca-cert`: publish and fetch through the proxy.
    let file = dir.join("calc.wasm");
    std::fs::write(&file, fixture("b01-fac.component.wasm")).unwrap();
    let ca_arg = ca.to_str().unwrap();
    for args in [
        vec!["key", "new"],
        vec![
            "publish",
            "init",
            "example:calc",
            "--registry",
            &url,
            "--ca-cert",
            ca_arg,
        ],
        vec![
            "publish",
            "release",
            "example:calc",
            "--version",
            "1.0.0",
            file.to_str().unwrap(),
            "--registry",
            &url,
            "--ca-cert",
            ca_arg,
        ],
    ] {
        let (ok, text) = run(&alice, &args, &[]);
        assert!(ok, "cairn {args:?}: {text}");
    }
    let out = dir.join("fetched.wasm");
    let (ok, text) = run(
        &alice,
        &[
            "fetch",
            "example:calc",
            "-o",
            out.to_str().unwrap(),
            "--registry",
            &url,
        ],
        &[("CAIRN_CA_CERT", &ca)],
    );
    assert!(ok, "{text}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        fixture("b01-fac.component.wasm")
    );
    // SSL_CERT_FILE names the roots to trust, as for other tools.
    let (ok, text) = run(
        &alice,
        &["update", "--registry", &url],
        &[("SSL_CERT_FILE", &ca)],
    );
    assert!(ok, "{text}");
    // A file that holds no certificate is refused as such.
    let (ok, text) = run(
        &alice,
        &[
            "update",
            "--registry",
            &url,
            "--ca-cert",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(text.contains("CA certificate is not usable"), "{text}");
}
