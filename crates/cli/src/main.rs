//! The `cairn` command: one binary for the registry server, its clients and its tools.
//!
//! Each subcommand lives in `commands/<name>.rs` as a `clap` struct plus a `run` function that
//! wires arguments to the libraries; the logic lives in the library crates.

#![deny(unsafe_code)]

mod commands;
mod destination;
mod logging;
mod output;
mod progress;
mod settings;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// cairn: a registry for WebAssembly components, signed, logged and stored split.
#[derive(Parser)]
#[command(
    name = "cairn",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CAIRN_COMMIT"), ")"),
    about,
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Serve(commands::serve::ServeCommand),
    Audit(commands::audit::AuditCommand),
    #[command(subcommand)]
    Admin(commands::admin::AdminCommand),
    Config(commands::config::ConfigCommand),
    Login(commands::login::LoginCommand),
    Logout(commands::login::LogoutCommand),
    #[command(subcommand)]
    Publish(commands::publish::PublishCommand),
    Update(commands::update::UpdateCommand),
    Reset(commands::reset::ResetCommand),
    Info(commands::info::InfoCommand),
    Log(commands::log::LogCommand),
    Fetch(commands::fetch::FetchCommand),
    #[command(subcommand)]
    Key(commands::key::KeyCommand),
    Split(commands::split::SplitCommand),
    Join(commands::join::JoinCommand),
    Hash(commands::hash::HashCommand),
    Inspect(commands::inspect::InspectCommand),
    Dedup(commands::dedup::DedupCommand),
    Completions(commands::completions::CompletionsCommand),
    Man(commands::completions::ManCommand),
}

/// jemalloc rather than the system allocator: the server's requests allocate on one runtime
/// thread and free on another, which glibc's malloc handles slowly (the publish benchmark
/// spent about a tenth of the server's CPU in it).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(command) => command.run(),
        Command::Audit(command) => command.run(),
        Command::Admin(command) => command.run(),
        Command::Config(command) => command.run(),
        Command::Login(command) => command.run(),
        Command::Logout(command) => command.run(),
        Command::Publish(command) => command.run(),
        Command::Update(command) => command.run(),
        Command::Reset(command) => command.run(),
        Command::Info(command) => command.run(),
        Command::Log(command) => command.run(),
        Command::Fetch(command) => command.run(),
        Command::Key(command) => command.run(),
        Command::Split(command) => command.run(),
        Command::Join(command) => command.run(),
        Command::Hash(command) => command.run(),
        Command::Inspect(command) => command.run(),
        Command::Dedup(command) => command.run(),
        Command::Completions(command) => command.run(Cli::command()),
        Command::Man(command) => command.run(Cli::command()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`cairn man | head`): nothing more to say.
        Err(error)
            if error.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            if std::env::args().skip(1).any(|arg| arg == "--json") {
                // Scripts asked for JSON: the error is JSON too, on standard output.
                let report = serde_json::json!({
                    "error": format!("{error:#}"),
                    "kind": error_kind(&error),
                });
                use std::io::Write as _;
                let _ = writeln!(std::io::stdout(), "{report}");
            } else {
                eprintln!("error: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// A stable word for what kind of error ended a command, for scripts (`--json`).
fn error_kind(error: &anyhow::Error) -> &'static str {
    use cairn_client::ClientError as E;
    match error.downcast_ref::<E>() {
        Some(E::Security(_)) => "security",
        Some(E::DifferentHistory { .. }) => "different-history",
        Some(E::Network { .. }) => "network",
        Some(E::UntrustedCertificate { .. }) => "untrusted-certificate",
        Some(E::NotARegistry { .. }) => "not-a-registry",
        Some(E::Registry { .. }) => "registry",
        Some(E::PackageNotFound(_)) => "package-not-found",
        Some(E::NoMatchingRelease { .. }) => "no-matching-release",
        Some(E::Yanked { .. }) => "yanked",
        Some(E::UnknownNamespace { .. }) => "unknown-namespace",
        Some(E::NotPermitted { .. }) => "not-permitted",
        Some(E::Rejected { .. }) => "rejected",
        Some(_) => "client",
        None => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every leaf command, by its path (`publish release`).
    fn leaves() -> Vec<(String, clap::Command)> {
        fn visit(command: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
            for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name()).trim().to_owned();
                if sub.has_subcommands() {
                    visit(sub, &path, out);
                } else {
                    out.push((path, sub.clone()));
                }
            }
        }
        let mut out = Vec::new();
        visit(&Cli::command(), "", &mut out);
        out
    }

    fn takes(command: &clap::Command, flag: &str) -> bool {
        command.get_arguments().any(|a| a.get_long() == Some(flag))
    }

    /// Every command that prints a result can print it as JSON; the server prints logs (its
    /// `--log-format json`), `completions` and `man` print the artefact asked for.
    #[test]
    fn every_command_that_prints_takes_json() {
        for (path, command) in leaves() {
            let prints_artefact = matches!(path.as_str(), "serve" | "completions" | "man");
            assert_eq!(
                takes(&command, "json"),
                !prints_artefact,
                "`cairn {path}` and --json"
            );
        }
    }

    /// Flags only where they apply: `--concurrency` on the commands that move content, the
    /// connection's options on the commands that talk to a registry.
    #[test]
    fn flags_only_where_they_apply() {
        let moves_content = ["fetch", "publish release", "publish record"];
        let talks_to_registry = ["update", "info", "log", "fetch"];
        for (path, command) in leaves() {
            let moves = moves_content.contains(&path.as_str());
            let talks =
                moves || talks_to_registry.contains(&path.as_str()) || path.starts_with("publish ");
            assert_eq!(
                takes(&command, "concurrency"),
                moves,
                "`cairn {path}` and --concurrency"
            );
            for flag in ["ca-cert", "max-checkpoint-age"] {
                assert_eq!(takes(&command, flag), talks, "`cairn {path}` and --{flag}");
            }
            let per_registry =
                talks || matches!(path.as_str(), "login" | "logout" | "reset" | "config");
            assert_eq!(
                takes(&command, "registry"),
                per_registry,
                "`cairn {path}` and --registry"
            );
        }
    }

    /// Every command has examples in its `--help`, and each example (up to a pipe or a
    /// redirection) is a command line `cairn` accepts.
    #[test]
    fn every_command_has_examples_that_parse() {
        fn visit(command: &clap::Command, path: &str, examples: &mut Vec<(String, String)>) {
            let path = format!("{path} {}", command.get_name());
            if command.has_subcommands() {
                for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                    visit(sub, &path, examples);
                }
                return;
            }
            let help = command
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            let lines: Vec<String> = help
                .lines()
                .map(str::trim)
                .filter(|line| line.starts_with("cairn "))
                .map(str::to_owned)
                .collect();
            assert!(
                !lines.is_empty(),
                "`{}` has no examples in its --help",
                path.trim()
            );
            examples.extend(lines.into_iter().map(|line| (path.clone(), line)));
        }
        let mut examples = Vec::new();
        visit(&Cli::command(), "", &mut examples);
        for (path, line) in examples {
            let words: Vec<&str> = line
                .split_whitespace()
                .take_while(|word| !matches!(*word, "|" | ">" | "<" | "&&" | "#"))
                .collect();
            if let Err(error) = Cli::try_parse_from(&words) {
                panic!(
                    "the example `{line}` of `{}` does not parse:\n{error}",
                    path.trim()
                );
            }
        }
    }
}
