//! `cairn completions SHELL` and `cairn man`: shell completions and the manual page, made
//! from the same definitions as `--help`.

use clap::Args;

/// Print shell completions.
///
/// Install them where your shell looks, for example:
/// `cairn completions bash > ~/.local/share/bash-completion/completions/cairn`,
/// `cairn completions zsh > ~/.zfunc/_cairn`,
/// `cairn completions fish > ~/.config/fish/completions/cairn.fish`.
#[derive(Args)]
#[command(after_help = "Examples:
  cairn completions bash > ~/.local/share/bash-completion/completions/cairn
  cairn completions zsh > ~/.zfunc/_cairn")]
pub struct CompletionsCommand {
    /// The shell.
    shell: clap_complete::Shell,
}

impl CompletionsCommand {
    pub fn run(self, mut command: clap::Command) -> anyhow::Result<()> {
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut command, "cairn", &mut script);
        std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
        Ok(())
    }
}

/// Print the manual page (roff), for `man`.
#[derive(Args)]
#[command(after_help = "Examples:
  cairn man > ~/.local/share/man/man1/cairn.1 && man cairn
  cairn man | man -l -")]
pub struct ManCommand {}

impl ManCommand {
    pub fn run(self, command: clap::Command) -> anyhow::Result<()> {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        std::io::Write::write_all(&mut std::io::stdout().lock(), &page)?;
        Ok(())
    }
}
