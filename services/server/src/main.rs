//! The `rudder` binary. Errors end the process with one line on stderr and exit status 1 (2 for
//! command-line usage errors, from clap).

use clap::Parser;

// Model code allocates and frees many large tensors per step. glibc's malloc hands most of them back
// to the kernel and page-faults them in again (in `rudder bench train`, a fifth of the wall time was
// system time, mostly the kernel zeroing fresh pages); mimalloc with purging off keeps and reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the `mi_option_e` enum of the mimalloc 3 header that libmimalloc-sys
/// 0.1.49 builds (`c_src/mimalloc/v3/include/mimalloc.h`); the crate exports no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the OS: the process's peak is what it needs again next step.
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: sets one integer option of the allocator; valid at any time, from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = rudder_server::cli::Cli::parse();
    match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rudder: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
