//! Records the commit the binary is built from, for `cairn --version`: `git describe` of the
//! source tree, or `unknown` outside a git checkout (a crate tarball).

fn main() {
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CAIRN_COMMIT={commit}");
    // Rebuilt when HEAD moves (the path may not exist outside a checkout; then never).
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/index");
}
