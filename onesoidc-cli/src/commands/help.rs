//! `completions` and the hidden `manpages`: what packages install.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::output::Failure;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "onesoidc",
        &mut std::io::stdout(),
    );
}

/// Writes `onesoidc.1` and `onesoidc-<command>.1` for every command into
/// `dir` (created if missing).
pub fn manpages(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut root = Cli::command();
    // Propagates the global options into every subcommand.
    root.build();
    let mut pages = vec![("onesoidc".to_string(), root.clone())];
    for sub in root
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("onesoidc-{}", sub.get_name());
        let command = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("onesoidc {}", sub.get_name()));
        pages.push((name, command));
    }
    for (name, command) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .title(name.to_uppercase())
            .render(&mut page)
            .map_err(|e| format!("cannot render {name}.1: {e}"))?;
        std::fs::write(&path, page).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
