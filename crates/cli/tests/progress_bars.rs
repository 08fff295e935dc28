//! Progress bars, driven in a pseudo-terminal (`script`, 80 and 64 columns): uploads and downloads
//! are labelled with `package@version` and their direction, advance as the bytes stream, show
//! the rate and the time left, and fit the terminal's width; with `--json`, or when standard
//! error is not a terminal, there are none.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn script_present() -> bool {
    Command::new("sh")
        .args(["-c", "command -v script"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A component big enough for the bar to be drawn many times: the corpus' largest when the
/// corpus is there, else the largest fixture.
fn component() -> Vec<u8> {
    corpus("b10-py-spin-http.componentize-py.component.wasm")
        .unwrap_or_else(|| fixture("b03-rs-calc.wac.component.wasm"))
}

/// Runs `cairn ARGS` in a pseudo-terminal of 24 rows and `columns`; returns everything it
/// printed, with the terminal's control sequences removed, cut at carriage returns and
/// newlines.
fn in_terminal(user: &CliUser, columns: usize, args: &[&str]) -> Vec<String> {
    let line = format!(
        "stty rows 24 cols {columns}; {} {}",
        env!("CARGO_BIN_EXE_cairn"),
        args.join(" ")
    );
    let output = user
        .command("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "cairn {args:?} in a terminal:\n{text}"
    );
    strip_controls(&text)
        .split(['\r', '\n'])
        .map(str::to_owned)
        .filter(|line| !line.trim().is_empty())
        .collect()
}

/// Runs `cairn ARGS` off a terminal; it must succeed.
fn run_ok(user: &CliUser, args: &[&str]) -> std::process::Output {
    let output = user
        .command(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "cairn {args:?}: {output:?}");
    output
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
fn strip_controls(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The drawn bar lines among `lines`: those that say how long is left.
fn bars(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|line| line.ends_with(" left"))
        .collect()
}

#[test]
fn bars_label_stream_and_fit_a_terminal_and_stay_off_otherwise() {
    if !script_present() {
        let message =
            "SKIPPED: `script` (bsdutils) is not installed; the progress test did not run";
        assert!(std::env::var_os("CI").is_none(), "{message}, and CI is set");
        eprintln!("{message}");
        return;
    }
    let root = temp_dir("progress-bars");
    let server = TestServer::start(&root.join("registry"), &["--namespace", "example"]);
    let alice = CliUser::new(&root, "alice");
    let home = alice.home.clone();
    let file = home.join("app.wasm");
    let bytes = component();
    std::fs::write(&file, &bytes).unwrap();
    let registry = ["--registry", server.url.as_str()];
    run_ok(&alice, &["key", "new"]);
    run_ok(
        &alice,
        &[&["publish", "init", "example:app"][..], &registry].concat(),
    );

    let file_arg = file.to_str().unwrap();
    let up = in_terminal(
        &alice,
        80,
        &[
            &[
                "publish",
                "release",
                "example:app",
                "--version",
                "1.0.0",
                file_arg,
            ][..],
            &registry,
        ]
        .concat(),
    );
    let drawn = bars(&up);
    assert!(!drawn.is_empty(), "no upload bar:\n{up:#?}");
    for line in &drawn {
        assert!(line.starts_with("↑ "), "{line}");
        assert!(line.contains("/s "), "no rate: {line}");
        assert!(
            line.chars().count() <= 80,
            "wider than the terminal: {line}"
        );
        assert!(line.contains(" example:app@1.0.0 "), "{line}");
    }

    let out = home.join("fetched.wasm");
    let out_arg = out.to_str().unwrap();
    // A narrower terminal: the label gives way, the line still fits.
    let down = in_terminal(
        &alice,
        64,
        &[&["fetch", "example:app", "-o", out_arg][..], &registry].concat(),
    );
    let drawn = bars(&down);
    assert!(!drawn.is_empty(), "no download bar:\n{down:#?}");
    for line in &drawn {
        assert!(line.starts_with("↓ exam"), "{line}");
        assert!(
            line.chars().count() <= 64,
            "wider than the terminal: {line}"
        );
    }
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    if bytes.len() > 1 << 20 {
        // The bytes stream: the bar is drawn at several points of the transfer.
        let points: std::collections::BTreeSet<&str> = drawn
            .iter()
            .filter_map(|line| line.split(" [").nth(1)?.split(']').nth(1))
            .collect();
        assert!(points.len() > 2, "drawn at {points:?}");
    }

    // `--json` in a terminal: JSON and no bar.
    let json = in_terminal(
        &alice,
        80,
        &[
            &["fetch", "example:app", "-o", out_arg, "--json"][..],
            &registry,
        ]
        .concat(),
    );
    assert!(bars(&json).is_empty(), "{json:#?}");
    // Not a terminal: no bar.
    let plain = run_ok(
        &alice,
        &[&["fetch", "example:app", "-o", out_arg][..], &registry].concat(),
    );
    assert!(!String::from_utf8_lossy(&plain.stderr).contains(" left"));
    let _ = Path::new(out_arg);
}
