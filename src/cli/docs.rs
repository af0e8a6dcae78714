//! `completions` and `man`, generated from the clap definitions.

use anyhow::Context;
use clap::CommandFactory;

use crate::Cli;
use crate::report::write_stdout;

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "stream-pack", &mut script);
    if shell == clap_complete::Shell::Bash {
        // clap_complete 4.6 spells a subcommand's state of a hyphenated program two ways: the
        // loop that enters `hls` says `stream__pack__subcmd__hls`, the case that completes it
        // `stream__subcmd__pack__subcmd__hls`, so no option past a subcommand would complete
        // (clap-rs/clap#6421).
        script = String::from_utf8_lossy(&script)
            .replace("stream__subcmd__pack", "stream__pack")
            .into_bytes();
    }
    write_stdout(&script)
}

/// The manual page of `stream-pack`, then one of each command, in one roff stream.
pub fn man() -> anyhow::Result<()> {
    let mut command = Cli::command();
    command.build();
    let mut page = Vec::new();
    let pages = std::iter::once(&command).chain(command.get_subcommands());
    for command in pages.filter(|c| c.get_name() != "help") {
        clap_mangen::Man::new(command.clone())
            .render(&mut page)
            .context("rendering the manual page")?;
    }
    // groff reads a page on stdin as Latin-1 (`man -l -` says no encoding), so every other
    // character goes as its escape: `→` as `\[u2192]`.
    let ascii: String = String::from_utf8_lossy(&page)
        .chars()
        .map(|c| match c.is_ascii() {
            true => c.to_string(),
            false => format!("\\[u{:04X}]", u32::from(c)),
        })
        .collect();
    write_stdout(ascii.as_bytes())
}
