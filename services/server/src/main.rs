//! The `rudder` binary. Errors end the process with one line on stderr and exit status 1 (2 for
//! command-line usage errors, from clap).

use clap::Parser;

// Model code allocates and frees many large tensors per step. glibc's malloc hands most of them back
// to the kernel and page-faults them in again (in `rudder bench train`, a fifth of the wall time was
// system time); mimalloc keeps and reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
