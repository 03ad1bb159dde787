//! Regenerates `data/`, the small synthetic world the quickstart reads.
//!
//! ```text
//! cargo run --release --example gen_data            # writes data/
//! cargo run --release --example gen_data -- OUT_DIR # writes elsewhere
//! ```
//!
//! The world is `SynthConfig::sample()` (3,000 products, 600 users, d = 32,
//! seed 42): the same files on every run.

use omnifeed::synth::{SynthConfig, generate};

fn main() -> Result<(), omnifeed::Error> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "data".to_string());
    let world = generate(&SynthConfig::sample())?;
    world.write_dir(&dir)?;
    println!(
        "wrote {dir}: {} products, {} merchants, {} content items, {} events",
        world.catalog.len(),
        world.catalog.merchants().len(),
        world.catalog.content_len(),
        world.events.len()
    );
    Ok(())
}
