//! `cairn admin publisher`: publisher accounts, managed beside a running registry.

use anyhow::{bail, Context};
use std::sync::Arc;

use cairn_store::{Publisher, PublisherAccounts, PublisherScope, PublisherStore};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::DataDir;

/// Publisher accounts: who may publish over OCI (`wkg publish`, `oras push`), and, with
/// `cairn serve --require-publisher-token`, who may publish at all.
#[derive(Subcommand)]
pub enum PublisherCommand {
    /// Create an account and print its token (shown this once; the registry keeps only its
    /// hash) and the public key the registry signs its releases with.
    #[command(
        after_help = "Examples:\n  cairn admin publisher add ci-bot --namespace example\n  cairn admin publisher add alice --namespace example:hello --json"
    )]
    Add(PublisherAdd),
    /// List the accounts.
    #[command(
        after_help = "Examples:\n  cairn admin publisher list\n  cairn admin publisher list --json"
    )]
    List(PublisherList),
    /// Revoke an account: its token, and every token issued for it, stop working at once.
    #[command(after_help = "Examples:\n  cairn admin publisher revoke ci-bot")]
    Revoke(PublisherRevoke),
}

#[derive(Args)]
pub struct PublisherAdd {
    #[command(flatten)]
    dir: DataDir,
    /// The account's name (lowercase letters, digits, `-` and `_`).
    name: String,
    /// A namespace whose packages the account may publish (repeatable).
    #[arg(long = "namespace", value_name = "NS")]
    namespaces: Vec<String>,
    /// One package the account may publish, `NS:NAME` (repeatable).
    #[arg(long = "package", value_name = "NS:NAME")]
    packages: Vec<String>,
    /// Print the account as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct PublisherList {
    #[command(flatten)]
    dir: DataDir,
    /// Print the accounts as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct PublisherRevoke {
    #[command(flatten)]
    dir: DataDir,
    /// The account's name.
    name: String,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

/// An account as `--json` prints it.
#[derive(Serialize)]
struct AccountJson<'a> {
    name: &'a str,
    public_key: &'a str,
    key_id: String,
    scopes: Vec<String>,
    created: String,
    revoked: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
}

fn time(seconds: i64) -> String {
    cairn_protocol::Timestamp { seconds, nanos: 0 }.to_rfc3339()
}

fn account_json<'a>(account: &'a Publisher, token: Option<&'a str>) -> AccountJson<'a> {
    AccountJson {
        name: &account.name,
        public_key: &account.public_key,
        key_id: key_id(&account.public_key),
        scopes: account.scopes.iter().map(ToString::to_string).collect(),
        created: time(account.created),
        revoked: account.revoked.map(time),
        token,
    }
}

fn key_id(public_key: &str) -> String {
    public_key
        .parse::<cairn_protocol::PublicKey>()
        .map(|key| key.fingerprint().to_string())
        .unwrap_or_default()
}

async fn open(dir: &DataDir) -> anyhow::Result<Arc<dyn PublisherAccounts>> {
    if let Some(database) = &dir.database()? {
        let store = cairn_store::open(database)
            .await
            .with_context(|| format!("cannot open the accounts in {}", database.display()))?;
        return Ok(store);
    }
    let database = dir.data.join(cairn_server::DATABASE_FILE);
    if !database.is_file() {
        bail!(
            "{} has no registry; run `cairn serve --data {}` once first",
            dir.data.display(),
            dir.data.display()
        );
    }
    let store = PublisherStore::open(&database)
        .await
        .with_context(|| format!("cannot open the accounts of {}", database.display()))?;
    Ok(Arc::new(store))
}

pub async fn run(command: PublisherCommand) -> anyhow::Result<()> {
    match command {
        PublisherCommand::Add(c) => {
            let mut scopes = Vec::new();
            for text in c.namespaces.iter().chain(&c.packages) {
                scopes.push(text.parse::<PublisherScope>().map_err(anyhow::Error::msg)?);
            }
            if c.namespaces.iter().any(|ns| ns.contains(':')) {
                bail!("--namespace takes a namespace (`example`); use --package for one package (`example:hello`)");
            }
            if c.packages.iter().any(|p| !p.contains(':')) {
                bail!("--package takes a package (`example:hello`); use --namespace for a whole namespace");
            }
            let store = open(&c.dir).await?;
            let created =
                cairn_server::publishers::create(&c.dir.data, &*store, &c.name, &scopes).await?;
            let account = &created.publisher;
            if c.json {
                return crate::output::print_json(&account_json(account, Some(&created.token)));
            }
            crate::outln!("created publisher `{}`", account.name);
            crate::outln!(
                "  may publish: {}",
                cairn_server::publishers::describe_scopes(account)
            );
            crate::outln!("  signing key: {}", account.public_key);
            crate::outln!("  token:       {}", created.token);
            crate::outln!();
            crate::outln!(
                "The token is shown only now; the registry keeps its hash. Give it to the"
            );
            crate::outln!(
                "publisher: it is the password for `wkg publish`, `oras push` and the like"
            );
            crate::outln!("(any user name), and the token for `warg login` and `cairn login`.");
            crate::outln!(
                "To let this account release an existing package, an owner of the package runs:"
            );
            crate::outln!(
                "  cairn publish grant NS:NAME {} --permission release",
                account.public_key
            );
            Ok(())
        }
        PublisherCommand::List(c) => {
            let store = open(&c.dir).await?;
            let accounts = store.publishers().await?;
            if c.json {
                let json: Vec<AccountJson> =
                    accounts.iter().map(|a| account_json(a, None)).collect();
                return crate::output::print_json(&json);
            }
            if accounts.is_empty() {
                crate::outln!("no publisher accounts; create one with `cairn admin publisher add NAME --namespace NS`");
            }
            for account in &accounts {
                let state = match account.revoked {
                    Some(at) => format!("revoked {}", time(at)),
                    None => format!("since {}", time(account.created)),
                };
                crate::outln!(
                    "{}  {}  may publish {}  key {}",
                    account.name,
                    state,
                    cairn_server::publishers::describe_scopes(account),
                    key_id(&account.public_key)
                );
            }
            Ok(())
        }
        PublisherCommand::Revoke(c) => {
            let store = open(&c.dir).await?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let revoked = store.revoke_publisher(&c.name, now).await?;
            let found = store.publisher(&c.name).await?;
            if found.is_none() {
                bail!(
                    "there is no publisher `{}`; `cairn admin publisher list` shows the accounts",
                    c.name
                );
            }
            if c.json {
                return crate::output::print_json(&serde_json::json!({
                    "name": c.name,
                    "revoked": true,
                    "alreadyRevoked": !revoked,
                }));
            }
            match revoked {
                true => crate::outln!(
                    "revoked publisher `{}`: its token no longer works; packages that granted \
                     its key keep their grants until their owners revoke them",
                    c.name
                ),
                false => crate::outln!("publisher `{}` was revoked already", c.name),
            }
            Ok(())
        }
    }
}
