//! The `rudder` binary. Errors end the process with one line on stderr and exit status 1 (2 for
//! command-line usage errors, from clap).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = rudder_server::cli::Cli::parse();
    match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rudder: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
