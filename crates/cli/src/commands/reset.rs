//! `cairn reset`: forget what the client trusts about a registry.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;

use super::client::{storage_dir, RegistryArg};
use crate::output;

/// Forget what you trust about a registry.
///
/// Removes the checkpoint, the operator log and the package logs you trust for the registry;
/// the next command trusts what the registry shows then, as on first use. Do this only when
/// you know why the registry's history changed (it was reset, or another registry now answers
/// at its address): a registry that rewrites its history is otherwise exactly what the checks
/// refuse. The fragment cache is kept; every fragment is checked against its digest when used.
#[derive(Args)]
#[command(after_help = "Examples:
  cairn reset                                   # the default registry, after a confirmation
  cairn reset --registry http://127.0.0.1:8090 --yes")]
pub struct ResetCommand {
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
    #[command(flatten)]
    registry: RegistryArg,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    registry: String,
    forgotten: bool,
    log_length: Option<u64>,
    packages: usize,
}

impl ResetCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let url = self.registry.url(None)?;
        let file = storage_dir(&url)?.join(cairn_client::STATE_FILE);
        let mut report = Report {
            registry: url.to_string(),
            forgotten: false,
            log_length: None,
            packages: 0,
        };
        if !file.exists() {
            if self.json {
                return output::print_json(&report);
            }
            crate::outln!("nothing to forget: you trust nothing about {url} yet");
            return Ok(());
        }
        // What is forgotten, when the state can be read (a damaged one is removed all the same).
        if let Ok(client) = self.registry.open_offline() {
            report.log_length = client.trusted().checkpoint().map(|c| c.contents.log_length);
            report.packages = client.trusted().packages().count();
        }
        if !self.yes {
            confirm(&url.to_string(), &report)?;
        }
        std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
        report.forgotten = true;
        if self.json {
            return output::print_json(&report);
        }
        crate::outln!(
            "forgot what you trusted about {url}; the next command trusts what it shows then"
        );
        Ok(())
    }
}

/// Asks on the terminal; anything but `y` or `yes` cancels.
fn confirm(url: &str, report: &Report) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "`cairn reset` asks for confirmation on a terminal: pass `--yes` to reset without it"
        );
    }
    let what = match report.log_length {
        Some(length) => format!(
            "its log up to length {length} and {}",
            output::count(report.packages, "followed package")
        ),
        None => "its state".to_owned(),
    };
    eprint!("forget what you trust about {url} ({what})? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        bail!("nothing was forgotten");
    }
    Ok(())
}
