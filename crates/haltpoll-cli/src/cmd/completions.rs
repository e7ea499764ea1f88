//! `haltpoll completions SHELL`: the shell's completion script for haltpoll, generated from the
//! same clap definition as the command, so it knows every subcommand, option and value.

use anyhow::Result;
use clap::Args;
use clap_complete::Shell;

use crate::output;

/// Arguments of `haltpoll completions`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # bash, in this shell (the same line in ~/.bashrc keeps it)
  source <(haltpoll completions bash)
  # fish: write haltpoll.fish, then move it into ~/.config/fish/completions/ (mkdir -p it)
  haltpoll completions fish > haltpoll.fish
  # zsh: write _haltpoll, then move it into a directory of your $fpath
  haltpoll completions zsh > _haltpoll")]
pub struct CompletionsArgs {
    /// The shell to complete haltpoll in.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Runs `haltpoll completions`: the script of `args.shell` for `cmd`, on stdout.
pub fn run(args: &CompletionsArgs, mut cmd: clap::Command) -> Result<()> {
    // Into memory first: clap_complete panics when its writer fails, and a closed pipe
    // (`| head`) is no reason to.
    let mut script = Vec::new();
    let name = cmd.get_name().to_owned();
    clap_complete::generate(args.shell, &mut cmd, name, &mut script);
    output::write_stdout(|out| out.write_all(&script))
}
