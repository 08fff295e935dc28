//! Where `cairn fetch`, `join` and `split` write: `-o -` is standard output, a directory gets
//! `NAME.wasm`, an existing file with other bytes is replaced only with `--force`, and a path
//! that is not a regular file (a FIFO, a character device, both made here) is written into,
//! never replaced.

mod support;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

const COMPONENT: &str = "b03-rs-calc.wac.component.wasm";

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A split of the fixture component in `dir/calc.split`; returns its path.
fn split_fixture(dir: &Path) -> PathBuf {
    let input = dir.join(COMPONENT);
    std::fs::write(&input, fixture(COMPONENT)).unwrap();
    let split = dir.join("calc.split");
    let output = run(
        &[
            "split",
            input.to_str().unwrap(),
            "-o",
            split.to_str().unwrap(),
        ],
        dir,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    split
}

#[test]
fn join_writes_to_standard_output_and_into_a_directory() {
    let dir = temp_dir("out-join");
    let split = split_fixture(&dir);
    let split = split.to_str().unwrap();
    let output = run(&["join", split, "-o", "-"], &dir);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, fixture(COMPONENT));
    // The report goes to standard error.
    assert!(
        stderr(&output).contains("joined standard output"),
        "{}",
        stderr(&output)
    );
    // JSON and the file cannot share standard output.
    let output = run(&["join", split, "-o", "-", "--json"], &dir);
    assert!(!output.status.success());
    // The error itself is JSON, as `--json` asks, and nothing else is on standard output.
    let error: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("give `-o` a file"),
        "{error}"
    );
    // A directory gets the file named after the split.
    let into = dir.join("into");
    std::fs::create_dir(&into).unwrap();
    let output = run(&["join", split, "-o", into.to_str().unwrap()], &dir);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read(into.join("calc.wasm")).unwrap(),
        fixture(COMPONENT)
    );
    // No `-o`: the current folder.
    let output = run(&["join", split], &into);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn an_existing_file_with_other_bytes_is_replaced_only_with_force() {
    let dir = temp_dir("out-force");
    let split = split_fixture(&dir);
    let split = split.to_str().unwrap();
    let target = dir.join("calc.wasm");
    std::fs::write(&target, b"precious").unwrap();
    let output = run(&["join", split, "-o", target.to_str().unwrap()], &dir);
    assert!(!output.status.success());
    assert_eq!(
        stderr(&output).trim(),
        format!(
            "error: {} exists and holds other bytes; `--force` replaces it",
            target.display()
        )
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    let output = run(
        &["join", split, "-o", target.to_str().unwrap(), "--force"],
        &dir,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&target).unwrap(), fixture(COMPONENT));
    // The same bytes again need no `--force`.
    let output = run(&["join", split, "-o", target.to_str().unwrap()], &dir);
    assert!(output.status.success(), "{}", stderr(&output));
    // Nothing temporary is left beside it.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn a_fifo_is_written_into_not_replaced() {
    let dir = temp_dir("out-fifo");
    let split = split_fixture(&dir);
    let fifo = dir.join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // A reader drains the FIFO while `cairn join` writes to it.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let output = run(
        &[
            "join",
            split.to_str().unwrap(),
            "-o",
            fifo.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(reader.join().unwrap(), fixture(COMPONENT));
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn a_character_device_is_written_into_not_replaced() {
    let dir = temp_dir("out-device");
    let split = split_fixture(&dir);
    // A null device of our own (major 1, minor 3), so that a regression cannot touch
    // /dev/null; making one takes root.
    let device = dir.join("null");
    let made = Command::new("mknod")
        .arg(&device)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        let message = "SKIPPED: mknod needs root; the character device test did not run";
        assert!(std::env::var_os("CI").is_none(), "{message}, and CI is set");
        eprintln!("{message}");
        return;
    }
    let output = run(
        &[
            "join",
            split.to_str().unwrap(),
            "-o",
            device.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let meta = std::fs::symlink_metadata(&device).unwrap();
    assert!(meta.file_type().is_char_device(), "{meta:?}");
}

#[test]
fn split_reads_standard_input_refuses_a_dash_and_rewrites_a_damaged_blob() {
    let dir = temp_dir("out-split");
    let split = split_fixture(&dir);
    // `-o -`: a split is a directory.
    let output = run(&["split", COMPONENT, "-o", "-"], &dir);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("give `-o` a directory"),
        "{}",
        stderr(&output)
    );
    // Standard input in, the same blobs out.
    let from_stdin = dir.join("stdin.split");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["split", "-", "-o", from_stdin.to_str().unwrap(), "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &fixture(COMPONENT)).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["blobsWritten"], 16);
    // A blob damaged in place (same size) is written again, not trusted by its size.
    let blob = std::fs::read_dir(&split)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap() != "manifest.json")
        .unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&blob, &bytes).unwrap();
    let output = run(
        &["split", COMPONENT, "-o", split.to_str().unwrap(), "--json"],
        &dir,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["blobsWritten"], 1);
    let output = run(&["join", split.to_str().unwrap(), "-o", "-"], &dir);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, fixture(COMPONENT));
}

#[test]
fn fetch_writes_to_standard_output_a_directory_and_refuses_to_clobber() {
    let data = temp_dir("out-fetch-server");
    let server = TestServer::start(&data, &["--namespace", "example"]);
    let client = server.client();
    let mut publisher = Publisher::new("example:calc");
    publisher.publish_init(&client);
    publisher.publish_release(&client, "1.0.0", &fixture(COMPONENT));
    let home = temp_dir("out-fetch-client");
    let fetch = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("fetch")
            .args(args)
            .args(["--registry", &server.url])
            .current_dir(&home)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("CAIRN_CONFIG_DIR", home.join("cairn-config"))
            .env("CAIRN_DATA_DIR", home.join("cairn-data"))
            .env_remove("CAIRN_TOKEN")
            .output()
            .unwrap()
    };
    let output = fetch(&["example:calc", "-o", "-"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, fixture(COMPONENT));
    assert!(stderr(&output).contains("fetched example:calc@1.0.0 to standard output"));
    let into = home.join("into");
    std::fs::create_dir(&into).unwrap();
    let output = fetch(&["example:calc", "-o", into.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read(into.join("calc.wasm")).unwrap(),
        fixture(COMPONENT)
    );
    std::fs::write(home.join("calc.wasm"), b"mine").unwrap();
    let output = fetch(&["example:calc"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("calc.wasm exists and holds other bytes; `--force` replaces it"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(home.join("calc.wasm")).unwrap(), b"mine");
    let output = fetch(&["example:calc", "--force"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read(home.join("calc.wasm")).unwrap(),
        fixture(COMPONENT)
    );
}

/// A reader that went away (`cairn inspect app.wasm | head -1`) ends a command quietly: no
/// panic, no error, success; for commands that print lines and for those that write a file.
#[test]
fn a_closed_standard_output_ends_a_command_quietly() {
    let dir = temp_dir("closed-stdout");
    let component = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(COMPONENT);
    let component = component.to_str().unwrap();
    let blobs = split_fixture(&dir);
    let blobs = blobs.to_str().unwrap();
    for args in [
        vec!["inspect", component],
        vec!["hash", component, component],
        vec!["inspect", component, "--json"],
        vec!["join", blobs, "-o", "-"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(&args)
            .current_dir(&dir)
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = stderr(&output);
        assert!(
            output.status.success() && !stderr.contains("panicked"),
            "cairn {args:?}: {:?}\n{stderr}",
            output.status
        );
    }
}
