//! `haltpoll man [--out DIR]`: man pages generated from the clap definition (clap_mangen), one
//! for haltpoll and one per subcommand, with the examples and the exit status of `--help` as
//! the pages' EXAMPLES and EXIT STATUS sections.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Command};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};

use crate::output;
use crate::staged_file::StagedFile;

/// Arguments of `haltpoll man`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # every page into your own manual; man finds it there when ~/.local/bin is on PATH,
  # or with MANPATH=\"$HOME/.local/share/man:\": then `man haltpoll-tune` works
  haltpoll man --out ~/.local/share/man/man1
  # the top page, read at once
  haltpoll man | man -l -")]
pub struct ManArgs {
    /// Write haltpoll.1 and a page per subcommand (haltpoll-replay.1, haltpoll-bench-vm.1,
    /// ...) into DIR, creating it. Without it, haltpoll.1 goes to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `haltpoll man` for the command `cmd`.
pub fn run(args: &ManArgs, cmd: Command) -> Result<()> {
    // No `help` subcommand on the pages: it is not one a user looks up.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = &args.out else {
        let page = render(&cmd).context("cannot render the man page")?;
        return output::write_stdout(|out| out.write_all(&page));
    };
    // create_dir_all on a file or device says only "File exists".
    if dir.exists() && !dir.is_dir() {
        return Err(crate::Usage(format!(
            "{} is not a directory: --out takes the directory to write the pages into",
            dir.display()
        ))
        .into());
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    output::write_stdout(|out| {
        for path in &written {
            writeln!(out, "{}", path.display())?;
        }
        Ok(())
    })
}

/// Writes the page of `cmd` and of each of its subcommands into `dir`, noting each path.
fn write_pages(cmd: &Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let path = dir.join(format!("{}.1", page_name(cmd)));
    let page = render(cmd).with_context(|| format!("cannot render {}", path.display()))?;
    // Beside the page and renamed onto it: a full disk leaves an older page whole.
    let mut staged = StagedFile::create(&path)?;
    staged.writer().write_all(&page).with_context(|| format!("cannot write {}", path.display()))?;
    staged.commit()?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

/// The page's name: `haltpoll-bench-vm` for `haltpoll bench vm` (clap's display name once the
/// top command is built).
fn page_name(cmd: &Command) -> &str {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
}

/// A roff request without arguments.
const NO_ARGS: [&str; 0] = [];

/// One page: clap_mangen's title, name, synopsis, description, options and subcommands, then
/// a section per heading of the command's after-help text (EXAMPLES, EXIT STATUS), then the
/// version.
fn render(cmd: &Command) -> io::Result<Vec<u8>> {
    let man = Man::new(cmd.clone()).manual("haltpoll manual");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut page)?;
    }
    if let Some(after) = cmd.get_after_help() {
        let mut roff = Roff::new();
        for (heading, lines) in help_sections(&after.to_string()) {
            roff.control("SH", [heading.to_uppercase().as_str()]);
            // As `--help` shows them: comments and command lines, unfilled.
            roff.control("nf", NO_ARGS);
            for line in lines {
                roff.text([roman(line.strip_prefix("  ").unwrap_or(line))]);
            }
            roff.control("fi", NO_ARGS);
        }
        roff.to_writer(&mut page)?;
    }
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// The sections of an after-help text: a line at the margin ending in ':' starts one
/// ("Examples:", "Exit status:"); the indented lines under it are its body. Blank lines end
/// nothing and are dropped.
pub fn help_sections(text: &str) -> Vec<(&str, Vec<&str>)> {
    let mut sections: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match line.strip_suffix(':') {
            Some(heading) if !line.starts_with(' ') => sections.push((heading, Vec::new())),
            _ => match sections.last_mut() {
                Some((_, body)) => body.push(line),
                None => sections.push(("", vec![line])),
            },
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// Every command in the tree, with its path of names (empty for haltpoll itself); not the
    /// hidden ones (what a build leaves out), which have no page.
    fn every_command() -> Vec<(Vec<String>, Command)> {
        fn walk(cmd: &Command, path: Vec<String>, all: &mut Vec<(Vec<String>, Command)>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help" && !s.is_hide_set()) {
                let mut sub_path = path.clone();
                sub_path.push(sub.get_name().to_owned());
                walk(sub, sub_path, all);
            }
            all.push((path, cmd.clone()));
        }
        let mut all = Vec::new();
        let mut top = crate::Cli::command();
        top.build();
        walk(&top, Vec::new(), &mut all);
        all
    }

    /// The words haltpoll gets from an example line: from `haltpoll` to the first shell
    /// operator (`|`, `>`, `&&`, a closing parenthesis).
    fn haltpoll_words(line: &str) -> Option<Vec<&str>> {
        let start = line.find("haltpoll ")?;
        let words = line[start..]
            .split_whitespace()
            .take_while(|w| !matches!(*w, "|" | ">" | "&&" | ";"))
            .map(|w| w.trim_end_matches(')'))
            .collect();
        Some(words)
    }

    #[test]
    fn every_command_ends_its_help_with_examples_that_parse() {
        let all = every_command();
        assert!(all.len() >= 10, "the tree was walked: {}", all.len());
        for (path, cmd) in all {
            let name = format!("haltpoll {}", path.join(" "));
            let after = cmd.get_after_help().unwrap_or_else(|| panic!("{name}: no after_help")).to_string();
            let sections = help_sections(&after);
            let (heading, lines) = &sections[0];
            assert_eq!(*heading, "Examples", "{name}: the after-help starts with the examples");
            let commands: Vec<&&str> = lines.iter().filter(|l| !l.trim_start().starts_with('#')).collect();
            assert!((2..=4).contains(&commands.len()), "{name}: 2 to 4 examples, not {}", commands.len());
            assert!(lines.iter().all(|l| l.starts_with("  ")), "{name}: examples are indented");
            // `--help` wraps at 100 columns, which would break a command line in two.
            let long: Vec<&&str> = lines.iter().filter(|l| l.len() > 96).collect();
            assert!(long.is_empty(), "{name}: lines too long for --help: {long:?}");
            for line in commands {
                let words = haltpoll_words(line).unwrap_or_else(|| panic!("{name}: {line:?} runs no haltpoll"));
                assert!(words.join(" ").starts_with(name.trim_end()), "{name}: {line:?} is another command's");
                if let Err(e) = crate::Cli::try_parse_from(&words) {
                    panic!("{name}: {line:?} does not parse: {e}");
                }
            }
            // Only the top command says more: the exit status.
            let rest: Vec<&str> = sections[1..].iter().map(|s| s.0).collect();
            let expected: &[&str] = if path.is_empty() { &["Exit status"] } else { &[] };
            assert_eq!(rest, expected, "{name}");
        }
    }

    #[test]
    fn sections_of_a_help_text() {
        let text = "Examples:\n  # one\n  haltpoll x\n\nExit status:\n  0    success\n";
        assert_eq!(
            help_sections(text),
            vec![("Examples", vec!["  # one", "  haltpoll x"]), ("Exit status", vec!["  0    success"])]
        );
    }

    #[test]
    fn a_page_has_the_examples_and_the_exit_status() {
        let mut cmd = crate::Cli::command().disable_help_subcommand(true);
        cmd.build();
        let top = String::from_utf8(render(&cmd).unwrap()).unwrap();
        for part in [".TH haltpoll 1", ".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS", ".SH EXAMPLES", "EXIT STATUS"] {
            assert!(top.contains(part), "{part} missing from\n{top}");
        }
        assert!(top.contains("130  interrupted"), "{top}");
        let replay = cmd.find_subcommand("replay").unwrap();
        assert_eq!(page_name(replay), "haltpoll-replay");
        let page = String::from_utf8(render(replay).unwrap()).unwrap();
        // roff escapes the minus signs of the options.
        assert!(page.contains("haltpoll replay examples/traces/mixed.txt"), "{page}");
        assert!(!page.contains("EXIT STATUS"), "only the top page has it");
    }
}
