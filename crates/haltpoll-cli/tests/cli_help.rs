//! The command explains itself, as a user meets it: every subcommand's `--help` ends with
//! examples, and every example runs as written (in a scratch directory holding the
//! repository's `examples/`); the exit status is documented and kept; the completion scripts
//! and the man pages are well formed.
//!
//! Examples that need root are not run; those that need KVM run where it can be used (skipped
//! elsewhere unless HALTPOLL_REQUIRE_KVM=1); those that need a Linux guest's cpuidle or the
//! haltpoll governor run where the machine has them. `groff` renders the man pages and `zsh`
//! parses its completions where they are installed (HALTPOLL_REQUIRE_GROFF=1 and
//! HALTPOLL_REQUIRE_ZSH=1 make their absence a failure, as in CI's .ci/cli-docs).

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use predicates::prelude::*;

fn haltpoll() -> Command {
    Command::cargo_bin("haltpoll").unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sections of a help text after the options: a line at the margin ending in ':' starts
/// one; its body is the indented lines under it.
fn sections(help: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in help.lines().filter(|l| !l.trim().is_empty()) {
        if !line.starts_with(' ') && line.ends_with(':') {
            sections.push((line.trim_end_matches(':').to_owned(), Vec::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push(line.to_owned());
        }
    }
    sections
}

/// Every command path (`[]`, `["bench"]`, `["bench", "vm"]`, ...) with its `--help` text,
/// found by following the "Commands:" sections of `--help`.
fn every_help() -> Vec<(Vec<String>, String)> {
    let mut todo = vec![Vec::<String>::new()];
    let mut all = Vec::new();
    while let Some(path) = todo.pop() {
        let out = haltpoll().args(&path).arg("--help").output().unwrap();
        assert!(out.status.success(), "haltpoll {} --help", path.join(" "));
        let help = stdout(&out);
        for (heading, body) in sections(&help) {
            if heading != "Commands" {
                continue;
            }
            // A subcommand's line starts two spaces in; its wrapped description further.
            for line in body.iter().filter(|l| l.starts_with("  ") && !l.starts_with("   ")) {
                let name = line.split_whitespace().next().unwrap();
                if name != "help" {
                    todo.push(path.iter().cloned().chain([name.to_owned()]).collect());
                }
            }
        }
        all.push((path, help));
    }
    all
}

/// The example command lines of a help text (comments left out).
fn examples(help: &str) -> Vec<String> {
    let sections = sections(help);
    let Some((_, body)) = sections.iter().find(|(h, _)| h == "Examples") else { return Vec::new() };
    body.iter().map(|l| l.trim().to_owned()).filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn every_help_ends_with_examples() {
    let all = every_help();
    let paths: Vec<String> = all.iter().map(|(p, _)| p.join(" ")).collect();
    for expected in ["", "replay", "tune", "status", "set", "completions", "man"] {
        assert!(paths.iter().any(|p| p == expected), "`haltpoll {expected}` was not found: {paths:?}");
    }
    #[cfg(all(feature = "bench", target_os = "linux"))]
    assert!(paths.iter().any(|p| p == "bench threads"), "{paths:?}");
    for (path, help) in &all {
        let name = format!("haltpoll {}", path.join(" "));
        let headings: Vec<String> = sections(help).into_iter().map(|(h, _)| h).collect();
        let last = headings.iter().rposition(|h| h == "Examples");
        let tail: &[String] = last.map_or(&[], |i| &headings[i + 1..]);
        let allowed: &[&str] = if path.is_empty() { &["Exit status"] } else { &[] };
        assert!(last.is_some() && tail == allowed, "{name}: the help must end with the examples: {headings:?}");
        let examples = examples(help);
        assert!((2..=4).contains(&examples.len()), "{name}: {examples:?}");
        assert!(examples.iter().all(|e| e.contains(name.trim_end())), "{name}: {examples:?}");
    }
}

/// Why an example cannot run on this machine, if it cannot.
fn cannot_run(example: &str) -> Option<String> {
    let has = |path: &str| Path::new(path).exists();
    let program = |name: &str| std::process::Command::new(name).arg("--version").output().is_ok();
    if example.starts_with("sudo ") {
        return Some("needs root".to_owned());
    }
    if example.contains("haltpoll set") && !has("/sys/module/haltpoll/parameters") {
        return Some("this machine has no haltpoll governor".to_owned());
    }
    if example.contains("--watch") && !has("/sys/devices/system/cpu/cpu0/cpuidle") {
        return Some("this machine has no cpuidle states to watch".to_owned());
    }
    if example.contains("haltpoll exporter") {
        return Some("serves until it is stopped (tests/exporter.rs runs it)".to_owned());
    }
    if example.contains("--plot") && !cfg!(feature = "plot") {
        return Some("this haltpoll was built without plots (cargo feature `plot`)".to_owned());
    }
    if example.contains("| man ") && !program("man") {
        return Some("man is not installed".to_owned());
    }
    None
}

/// Whether the example runs our guest on KVM.
fn needs_kvm(example: &str) -> bool {
    example.contains("haltpoll bench vm") || example.contains("haltpoll vm ")
}

/// Runs `example` with bash in `dir` (holding a link to the repository's examples/), with the
/// haltpoll under test first on PATH and HOME in `dir`.
fn run_example(example: &str, dir: &Path) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("haltpoll");
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    std::process::Command::new("bash")
        .args(["-c", &format!("set -o pipefail; {example}")])
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir)
        .output()
        .unwrap()
}

#[test]
fn every_example_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo().join("examples"), dir.path().join("examples")).unwrap();
    let mut lines: Vec<String> = every_help().iter().flat_map(|(_, help)| examples(help)).collect();
    lines.sort();
    lines.dedup();
    let mut failed = Vec::new();
    let mut ran = 0;
    for example in &lines {
        if let Some(why) = cannot_run(example) {
            eprintln!("not run ({why}): {example}");
            continue;
        }
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        let _vm = if needs_kvm(example) {
            match haltpoll_vmm::testing::kvm_or_skip("every_example_runs_as_written") {
                Some(guard) => Some(guard),
                None => continue,
            }
        } else {
            None
        };
        let out = run_example(example, dir.path());
        ran += 1;
        if !out.status.success() {
            failed.push(format!(
                "{example}\n    exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        } else if out.stdout.is_empty() && !example.contains('>') && !example.starts_with("source ") {
            failed.push(format!("{example}\n    printed nothing"));
        }
    }
    assert!(ran >= 10, "only {ran} examples ran");
    assert!(failed.is_empty(), "examples that do not work as written:\n  {}", failed.join("\n  "));
    // What they wrote is there.
    assert!(dir.path().join("_haltpoll").exists() && dir.path().join("haltpoll.fish").exists());
    assert!(dir.path().join(".local/share/man/man1/haltpoll.1").exists());
}

#[test]
fn exit_status_0_on_success() {
    haltpoll().arg("--help").assert().code(0);
    haltpoll().arg("--version").assert().code(0).stdout(predicate::str::starts_with("haltpoll "));
    haltpoll().args(["replay", "--summary-only"]).arg(repo().join("examples/traces/mixed.txt")).assert().code(0);
}

#[test]
fn exit_status_1_when_the_work_fails() {
    // The command line is right; the work cannot be done.
    haltpoll()
        .args(["replay", "no-such-trace.txt"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with("haltpoll: error:"))
        .stderr(predicate::str::contains("no-such-trace.txt"));
    let empty = tempfile::NamedTempFile::new().unwrap();
    haltpoll().arg("tune").arg(empty.path()).assert().code(1).stderr(predicate::str::contains("no idle periods"));
    let dir = tempfile::tempdir().unwrap();
    haltpoll()
        .args(["set", "--dry-run", "ns=400us", "--sysfs-root"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("haltpoll: error:"));
}

#[test]
fn exit_status_2_on_a_usage_error() {
    let usage = |args: &[&str], says: &str| {
        haltpoll().args(args).assert().code(2).stderr(predicate::str::contains(says));
    };
    usage(&[], "Usage: haltpoll");
    usage(&["frobnicate"], "unrecognized subcommand 'frobnicate'");
    usage(&["replay", "examples/traces/mixed.txt", "--bogus"], "unexpected argument '--bogus'");
    usage(&["replay"], "required arguments were not provided");
    usage(&["tune", "t.txt", "--allow-shrink", "maybe"], "invalid value 'maybe'");
    usage(&["completions", "tcsh"], "invalid value 'tcsh'");
}

/// The codes and their one-line meanings in an "Exit status" section.
fn exit_codes(lines: &[String]) -> Vec<u32> {
    lines.iter().filter_map(|l| l.split_whitespace().next()?.trim_matches('`').parse().ok()).collect()
}

#[test]
fn exit_status_is_documented_alike_in_help_man_page_and_docs() {
    let help = stdout(&haltpoll().arg("--help").output().unwrap());
    let sections = sections(&help);
    let (_, body) = sections.iter().find(|(h, _)| h == "Exit status").expect("--help has an Exit status");
    let codes = exit_codes(body);
    assert_eq!(codes, [0, 1, 2, 130]);
    let page = stdout(&haltpoll().arg("man").output().unwrap());
    let man_part = page.split("EXIT STATUS").nth(1).expect("the man page has EXIT STATUS");
    for code in &codes {
        assert!(man_part.contains(&format!("\n{code} ")), "{code} missing from the man page's EXIT STATUS");
    }
    // docs/cli.md: a table under "## Exit status", `code` first.
    let docs = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    let table = docs.split("\n## Exit status\n").nth(1).expect("docs/cli.md has ## Exit status");
    let table: Vec<String> = table
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| format!("`{l}"))
        .collect();
    assert_eq!(exit_codes(&table), codes, "docs/cli.md's exit status table");
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = haltpoll().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = stdout(&out);
        for word in ["replay", "tune", "status", "completions", "max-poll-share"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
    }
}

/// Whether `program` runs here; if not, fine unless `require` (an environment variable) is 1.
fn installed(program: &str, require: &str) -> bool {
    if std::process::Command::new(program).arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var(require).as_deref() != Ok("1"), "{require}=1 but {program} is not installed");
    eprintln!("{program} is not installed: not checked with it");
    false
}

#[test]
fn zsh_completion_parses() {
    if !installed("zsh", "HALTPOLL_REQUIRE_ZSH") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("_haltpoll");
    std::fs::write(&path, haltpoll().args(["completions", "zsh"]).output().unwrap().stdout).unwrap();
    let check = std::process::Command::new("zsh").arg("-n").arg(&path).output().unwrap();
    assert!(check.status.success(), "zsh -n: {}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn bash_completion_parses_and_registers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("haltpoll.bash");
    std::fs::write(&path, haltpoll().args(["completions", "bash"]).output().unwrap().stdout).unwrap();
    let check = std::process::Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
    // Sourced, it completes haltpoll, and offers the subcommands after `haltpoll `.
    let script = format!(
        "source {}; complete -p haltpoll; COMP_WORDS=(haltpoll t); COMP_CWORD=1; COMP_LINE='haltpoll t'; \
         COMP_POINT=10; _haltpoll haltpoll t haltpoll; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let out = std::process::Command::new("bash").args(["-c", &script]).output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("-F _haltpoll haltpoll"), "{text}");
    assert!(text.lines().any(|l| l == "tune"), "completing `haltpoll t` offers tune: {text}");
}

/// grotty's plain text: no overstriking, no escape sequences, so the test reads words.
const PLAIN: &str = "-P-cbou";

#[test]
fn man_pages_for_every_command_render() {
    let dir = tempfile::tempdir().unwrap();
    let out = haltpoll().args(["man", "--out"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let commands: Vec<String> = every_help().into_iter().map(|(p, _)| p.join(" ")).collect();
    let mut expected: Vec<String> = commands
        .iter()
        .map(|c| if c.is_empty() { "haltpoll.1".to_owned() } else { format!("haltpoll-{}.1", c.replace(' ', "-")) })
        .collect();
    let mut pages: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    expected.sort();
    pages.sort();
    assert_eq!(pages, expected, "a page per command");
    // It says what it wrote, a path a line.
    assert_eq!(stdout(&out).lines().count(), pages.len());
    // Again over the pages: each is replaced whole, and nothing is left beside them.
    std::fs::write(dir.path().join("haltpoll.1"), "an older page").unwrap();
    assert!(haltpoll().args(["man", "--out"]).arg(dir.path()).output().unwrap().status.success());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), pages.len());
    for page in &pages {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        for part in [".TH ", ".SH NAME", ".SH SYNOPSIS", ".SH EXAMPLES"] {
            assert!(text.contains(part), "{page}: {part} missing");
        }
    }
    if !installed("groff", "HALTPOLL_REQUIRE_GROFF") {
        return; // the structure was checked, not the rendering
    }
    for page in &pages {
        let out = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-rLL=100n", PLAIN])
            .arg(dir.path().join(page))
            .output()
            .unwrap();
        let text = stdout(&out);
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && warnings.is_empty(), "groff {page}: {warnings}");
        assert!(text.contains("EXAMPLES") && text.contains("SYNOPSIS"), "{page}:\n{text}");
    }
    let top = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-rLL=100n", PLAIN])
        .arg(dir.path().join("haltpoll.1"))
        .output()
        .unwrap();
    let text = stdout(&top);
    assert!(text.contains("haltpoll replay examples/traces/mixed.txt"), "{text}");
    assert!(text.contains("130  interrupted (Ctrl-C)"), "{text}");
}
