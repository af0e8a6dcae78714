//! Package a file as an HLS ladder from Rust, printing progress as it goes and giving up after
//! ten minutes.
//!
//!     cargo run --example package -- input.mp4 out/

use std::time::{Duration, Instant};

use stream_pack::progress::Progress;
use stream_pack::{PackageOptions, package};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: package INPUT OUTPUT_DIR".into());
    };
    let mut options = PackageOptions::hls(input, output);
    options.reps = "720,480".parse()?;
    options.segment_duration = 4.0;
    // Any clone of the job's cancel stops it: from the monitor, another thread or a signal handler.
    let cancel = options.input_options.cancel.clone();
    let started = Instant::now();
    let mut monitor = |p: &Progress| {
        eprintln!("{:?} {:.0}%", p.stage, p.percent.unwrap_or(0.0));
        if started.elapsed() > Duration::from_secs(600) {
            cancel.cancel();
        }
    };
    let report = package(&options, &mut monitor)?;
    println!("{}", report.manifests[0].display());
    Ok(())
}
