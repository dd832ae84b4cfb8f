//! `onesoidc`: OnesID device authentication from a shell.
#![forbid(unsafe_code)]
// The doc comments of `cli.rs` are clap's `--help` text, not rustdoc.
#![allow(rustdoc::bare_urls)]

mod cache;
mod cli;
mod commands;
mod output;
mod service_manager;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse_from(cli::px_short_forms(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) => return output::usage_error(&e),
    };
    // Seeding aws-lc's generator (in builds that sample CPU jitter) overlaps
    // starting the runtime, loading the identity and connecting.
    onesoidc_flows::warm_up_random_generator();
    output::init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return output::fail(
                &format!("cannot start the async runtime: {e}"),
                output::EXIT_ERROR,
            );
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => output::fail(&failure.message, failure.code),
    }
}
