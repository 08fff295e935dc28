//! `cairn login` and `cairn logout`: the publisher token a registry gave you, kept for its URL.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::bail;
use clap::Args;

use super::client::RegistryArg;
use crate::settings;

/// Save the publisher token a registry's operator gave you (`cairn admin publisher add`).
///
/// The token is read from standard input (a line), kept in the config folder's
/// `tokens.json` (mode 0600) for the registry's URL, and sent as a bearer token with every
/// request to that registry. `CAIRN_TOKEN` overrides it.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn login --registry https://registry.example.com < token.txt\n  echo \"$CAIRN_PUBLISHER_TOKEN\" | cairn login"
)]
pub struct LoginCommand {
    #[command(flatten)]
    registry: RegistryArg,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

/// Forget the token saved for a registry.
#[derive(Args)]
#[command(after_help = "Examples:\n  cairn logout --registry https://registry.example.com")]
pub struct LogoutCommand {
    #[command(flatten)]
    registry: RegistryArg,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

impl LoginCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let url = self.registry.url(None)?;
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprint!("token for {url}: ");
            std::io::stderr().flush()?;
        }
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let token = line.trim();
        if token.is_empty() {
            bail!("no token given: pipe the token on standard input (`cairn login < FILE`)");
        }
        let url = url.to_string();
        let path = settings::set_token(&url, Some(token))?;
        if self.json {
            return crate::output::print_json(&serde_json::json!({
                "registry": url,
                "saved": path,
            }));
        }
        crate::outln!("saved the token for {url} in {}", path.display());
        Ok(())
    }
}

impl LogoutCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let url = self.registry.url(None)?;
        let path = settings::set_token(&url.to_string(), None)?;
        if self.json {
            return crate::output::print_json(&serde_json::json!({
                "registry": url.to_string(),
                "forgotten": path,
            }));
        }
        crate::outln!("forgot the token for {url} ({})", path.display());
        Ok(())
    }
}
