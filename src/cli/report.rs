//! What the commands print: the package report, the remux summary, upload counts, and stdout
//! writes that a closed pipe does not fail.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use stream_pack::PackageReport;
use stream_pack::output::publish::PublishCounts;
use stream_pack::package::per_title::PerTitleReport;
use stream_pack::package::per_title::choose::Decision;
use stream_pack::tools::remux::RemuxReport;

/// What a command that makes one file prints: its `notes` (on stderr), its `summary` lines, the
/// summary of the remux that made an MP4 of it (if any), and where the file is.
pub fn print_file(notes: &[String], summary: &[String], remux: Option<&RemuxReport>, output: &Path) {
    for note in notes {
        eprintln!("note: {note}");
    }
    for line in summary {
        println!("{line}");
    }
    if let Some(remux) = remux {
        print_remux(remux);
    }
    println!("output: {}", output.display());
}

fn print_remux(report: &RemuxReport) {
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    println!(
        "copied {} ({} packets, {:.3} s) into a progressive MP4, index at the front",
        report.streams.join(", "),
        report.packets,
        report.duration
    );
}

pub fn print_report(report: &PackageReport) {
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    for dropped in &report.dropped_above_source {
        eprintln!("note: left out the {dropped}p rung: it is above the source (use --allow-upscale to keep it)");
    }
    if let Some(ladder) = &report.per_title {
        print_per_title(ladder);
    }
    for r in &report.renditions {
        let size = r.resolution.map_or("audio".to_owned(), |(w, h)| format!("{w}x{h}"));
        println!(
            "{:<12} {:<10} {:<24} {:>4} segments  {:>8.0} kb/s",
            r.name,
            size,
            r.codecs,
            r.segments,
            r.average_bitrate / 1000.0
        );
    }
    for manifest in &report.manifests {
        println!("package: {}", manifest.display());
    }
    for manifest in &report.remote_manifests {
        println!("package: {manifest}");
    }
    if let Some(published) = &report.published {
        println!("published: {}", uploads(published));
    }
}

/// The per-title ladder, a line per candidate rung: what it got against the fixed ladder, or why
/// it was dropped.
fn print_per_title(ladder: &PerTitleReport) {
    println!(
        "per-title ladder (probe: {} windows, x264 {}, {:.1} CPU s):",
        ladder.windows.len(),
        ladder.probe_preset,
        ladder.probe_cpu_seconds
    );
    for rung in &ladder.rungs {
        let target = rung.quality_target.map_or("-".into(), |t| format!("{t:.1} dB"));
        let predicted = rung.predicted_psnr.map_or("-".into(), |p| format!("{p:.1} dB"));
        let outcome = match &rung.decision {
            Decision::Reached => "target reached".to_owned(),
            Decision::Capped => "capped at maxrate".to_owned(),
            Decision::Held { reason } => format!("held: {reason}"),
            Decision::Resized { to, reason } => format!("encoded as {to}: {reason}"),
            Decision::Fixed { reason } => format!("fixed rate: {reason}"),
            Decision::Dropped { reason } => format!("dropped: {reason}"),
        };
        println!(
            "  {:<10} {:>6} kb/s (fixed {:>6} kb/s)  target {target}, predicted {predicted}  {outcome}",
            rung.name,
            rung.chosen_bitrate / 1000,
            rung.fixed_bitrate / 1000
        );
    }
}

/// `12 files, 3.4 MB uploaded, 1 retry, 2 removed`
pub fn uploads(counts: &PublishCounts) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut text = format!(
        "{}, {:.1} MB uploaded",
        plural(counts.uploads, "file", "files"),
        counts.bytes as f64 / 1e6
    );
    if counts.retries > 0 {
        text += &format!(", {}", plural(counts.retries, "retry", "retries"));
    }
    if counts.deletes > 0 {
        text += &format!(", {} removed", counts.deletes);
    }
    text
}

/// Writes `bytes` to stdout.
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    unless_broken_pipe(std::io::stdout().lock().write_all(bytes))
}

/// The result of writing to stdout, where a reader that stops early (`| head`) is no failure.
pub fn unless_broken_pipe(written: std::io::Result<()>) -> anyhow::Result<()> {
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}
