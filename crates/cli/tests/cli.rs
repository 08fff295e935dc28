//! CLI behaviour, tested by transcript files.
//!
//! Each `tests/cli/NAME.cmd` holds commands, one a line, run in order with the fixtures
//! folder (`tests/fixtures` at the repository root) as working directory:
//!
//! * `cairn ARGS...` runs the binary; `{tmp}` in arguments is a fresh temporary directory;
//! * `corrupt PATH` flips one bit of the last byte of a file; `remove PATH` deletes one;
//! * `#` starts a comment.
//!
//! The transcript (each command, its stdout, its stderr and any non-zero exit status) must
//! equal `NAME.out`. `BLESS=1 cargo test -p cairn --test cli` rewrites the `.out` files.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn run_script(script: &Path, tmp: &Path) -> String {
    let text = std::fs::read_to_string(script).unwrap();
    let tmp_text = tmp.display().to_string();
    let mut transcript = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        transcript.push_str(&format!("$ {line}\n"));
        let words: Vec<String> = line
            .split_whitespace()
            .map(|w| w.replace("{tmp}", &tmp_text))
            .collect();
        match words[0].as_str() {
            "cairn" => {
                let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
                    .args(&words[1..])
                    .current_dir(fixtures())
                    .output()
                    .unwrap();
                let clean =
                    |bytes: &[u8]| String::from_utf8_lossy(bytes).replace(&tmp_text, "{tmp}");
                transcript.push_str(&clean(&output.stdout));
                let stderr = clean(&output.stderr);
                for line in stderr.lines() {
                    transcript.push_str(&format!("stderr: {line}\n"));
                }
                if !output.status.success() {
                    transcript
                        .push_str(&format!("[exit {}]\n", output.status.code().unwrap_or(-1)));
                }
            }
            "corrupt" => {
                let path = Path::new(&words[1]);
                let mut bytes = std::fs::read(path).unwrap();
                *bytes.last_mut().unwrap() ^= 0x01;
                std::fs::write(path, bytes).unwrap();
            }
            "remove" => std::fs::remove_file(&words[1]).unwrap(),
            other => panic!("{}: unknown command {other}", script.display()),
        }
    }
    transcript
}

#[test]
fn transcripts_match() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli");
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
        let tmp = std::env::temp_dir().join(format!(
            "cairn-cli-{}-{}",
            std::process::id(),
            script.file_stem().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&tmp).unwrap();
        let transcript = run_script(script, &tmp);
        std::fs::remove_dir_all(&tmp).unwrap();
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
