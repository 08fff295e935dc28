//! `cairn config`: the default registry and per-namespace registries.

use cairn_client::RegistryUrl;
use clap::Args;

use crate::output;
use crate::settings::ClientSettings;

/// Show or change the client settings.
///
/// They live in `config.json` in the XDG config folder.
///
/// With no options it prints the settings.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn config --registry https://registry.example.com\n  cairn config --namespace wasi=https://wa.dev\n  cairn config --json"
)]
pub struct ConfigCommand {
    /// The default registry URL (a bare host means `https://HOST`).
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// A registry for one namespace: `NS=URL` (repeatable; `NS=` removes it).
    #[arg(long = "namespace", value_name = "NS=URL")]
    namespaces: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl ConfigCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let mut settings = ClientSettings::load()?;
        let changed = self.registry.is_some() || !self.namespaces.is_empty();
        if let Some(url) = self.registry {
            settings.registry = Some(url.parse::<RegistryUrl>()?.to_string());
        }
        for pair in &self.namespaces {
            let (namespace, url) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--namespace takes NS=URL, not {pair:?}"))?;
            if url.is_empty() {
                settings.namespaces.remove(namespace);
            } else {
                namespace.parse::<cairn_protocol::Namespace>()?;
                let url = url.parse::<RegistryUrl>()?;
                settings
                    .namespaces
                    .insert(namespace.to_owned(), url.to_string());
            }
        }
        if changed {
            let path = settings.save()?;
            if !self.json {
                crate::outln!("saved {}", path.display());
            }
        }
        if self.json {
            return output::print_json(&settings);
        }
        crate::outln!(
            "registry: {}",
            settings.registry.as_deref().unwrap_or("(none)")
        );
        for (namespace, url) in &settings.namespaces {
            crate::outln!("namespace {namespace}: {url}");
        }
        Ok(())
    }
}
