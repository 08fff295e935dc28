//! `cairn key`: signing keys.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context;
use cairn_protocol::PrivateKey;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::output;
use crate::settings;

/// Manage signing keys.
///
/// Keys are files of mode 0600 in the XDG config folder; `CAIRN_KEY` may hold a key instead.
#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a new key.
    #[command(after_help = "Examples:\n  cairn key new\n  cairn key new --name work")]
    New(KeyName),
    /// Show a key's id and public key.
    #[command(after_help = "Examples:\n  cairn key info\n  cairn key info --name work --json")]
    Info(KeyName),
    /// List the stored keys.
    #[command(after_help = "Examples:\n  cairn key list")]
    List(JsonFlag),
    /// Store a key from a file (or `-` for standard input) holding `ecdsa-p256:...`.
    #[command(
        after_help = "Examples:\n  cairn key import --name ci ci.key\n  echo \"$SECRET\" | cairn key import --name ci -"
    )]
    Import(ImportKey),
    /// Print a key's secret text (handle with care).
    #[command(after_help = "Examples:\n  cairn key export --name work > work.key")]
    Export(KeyName),
}

#[derive(Args)]
pub struct KeyName {
    /// The key's name.
    #[arg(long, default_value = "default")]
    name: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ImportKey {
    /// The key's name.
    #[arg(long, default_value = "default")]
    name: String,
    /// The file holding the key, or `-`.
    file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyInfo {
    name: String,
    key_id: String,
    public_key: String,
}

fn info(name: &str, key: &PrivateKey) -> KeyInfo {
    KeyInfo {
        name: name.to_owned(),
        key_id: key.public_key().fingerprint().to_string(),
        public_key: key.public_key().to_string(),
    }
}

fn print_info(info: &KeyInfo, json: bool) -> anyhow::Result<()> {
    if json {
        return output::print_json(info);
    }
    crate::outln!("Key ID: {}", info.key_id);
    crate::outln!("Public Key: {}", info.public_key);
    Ok(())
}

impl KeyCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            KeyCommand::New(k) => {
                let key = PrivateKey::generate()?;
                let path = settings::save_key(&k.name, &key)?;
                if !k.json {
                    eprintln!("created key {:?} in {}", k.name, path.display());
                }
                print_info(&info(&k.name, &key), k.json)
            }
            KeyCommand::Info(k) => {
                print_info(&info(&k.name, &settings::load_key(&k.name)?), k.json)
            }
            KeyCommand::List(flag) => {
                let mut keys = Vec::new();
                for name in settings::key_names()? {
                    keys.push(info(&name, &settings::load_key(&name)?));
                }
                if flag.json {
                    return output::print_json(&keys);
                }
                for key in &keys {
                    crate::outln!("{}  {}  {}", key.name, key.key_id, key.public_key);
                }
                Ok(())
            }
            KeyCommand::Import(k) => {
                let mut text = String::new();
                if k.file.as_os_str() == "-" {
                    std::io::stdin().read_to_string(&mut text)?;
                } else {
                    text = std::fs::read_to_string(&k.file)
                        .with_context(|| format!("cannot read {}", k.file.display()))?;
                }
                let key: PrivateKey = text
                    .trim()
                    .parse()
                    .context("the input is not an `ecdsa-p256:` private key")?;
                settings::save_key(&k.name, &key)?;
                print_info(&info(&k.name, &key), k.json)
            }
            KeyCommand::Export(k) => {
                let key = settings::load_key(&k.name)?;
                if k.json {
                    let mut exported = serde_json::to_value(info(&k.name, &key))?;
                    exported["secretKey"] = key.to_secret_text().into();
                    return output::print_json(&exported);
                }
                crate::outln!("{}", key.to_secret_text());
                Ok(())
            }
        }
    }
}
