//! `cargo bench --bench model`: sampling tokens/s, training-step time and GFLOP/s of the 0.5M
//! model against this machine's f32 matmul GFLOP/s (see `oprl::model::bench`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    oprl::runtime::setup::configure_threads(None);
    match oprl::model::bench::run(&candle_core::Device::Cpu) {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
