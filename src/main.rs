//! The `oprl` command line.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    eprintln!("oprl: the command line is being assembled");
    std::process::exit(2);
}
