//! Package a file as an HLS ladder from Rust, printing progress as it goes.
//!
//!     cargo run --example package -- input.mp4 out/

use stream_pack::progress::{Control, Progress};
use stream_pack::{PackageOptions, package};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: package INPUT OUTPUT_DIR".into());
    };
    let mut options = PackageOptions::hls(input, output);
    options.reps = "720,480".parse()?;
    options.segment_duration = 4.0;
    let mut monitor = |p: &Progress| {
        eprintln!("{:?} {:.0}%", p.stage, p.percent.unwrap_or(0.0));
        Control::Continue
    };
    let report = package(&options, &mut monitor)?;
    println!("{}", report.manifests[0].display());
    Ok(())
}
