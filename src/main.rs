//! The `oprl` binary: everything is in [`oprl::cli`].

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(oprl::cli::main());
}
