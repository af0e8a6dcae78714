//! The progress UI: a bar on a terminal, or JSON lines on stderr.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use stream_pack::progress::{Monitor, Progress};

use crate::args::ProgressArg;
use crate::report::uploads;

/// Shows progress as the user asked.
pub struct CliMonitor {
    bar: Option<ProgressBar>,
    json: bool,
}

impl CliMonitor {
    pub fn new(style: ProgressArg) -> CliMonitor {
        let bar = (style == ProgressArg::Bar && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(1000);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg:10} [{bar:40}] {percent:>3}%  {prefix}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        CliMonitor {
            bar,
            json: style == ProgressArg::Json,
        }
    }

    pub fn close(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Monitor for CliMonitor {
    fn report(&mut self, progress: &Progress) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{:?}", progress.stage).to_lowercase());
            bar.set_position(progress.percent.map_or(0, |p| (p * 10.0) as u64));
            bar.set_prefix(prefix(progress));
        }
        if self.json {
            let mut err = std::io::stderr().lock();
            // Progress lines are best-effort: a closed stderr must not fail the job.
            let _ = serde_json::to_writer(&mut err, progress).map(|_| writeln!(err));
        }
    }
}

/// What the bar shows after its percentage: the download of the input, or the job's pace.
fn prefix(progress: &Progress) -> String {
    if let Some(fetched) = progress.fetched {
        return format!(
            "{:.1} of {:.1} MB",
            fetched.bytes as f64 / 1e6,
            fetched.total as f64 / 1e6
        );
    }
    let eta = progress.eta.map_or(String::new(), |e| format!("  ETA {e:.0} s"));
    let published = progress
        .published
        .map_or(String::new(), |counts| format!("  {}", uploads(&counts)));
    let lagging: String = progress
        .tracks
        .iter()
        .filter(|track| track.lagging)
        .map(|track| format!("  {} at {:.1} s", track.name, track.media_time))
        .collect();
    format!(
        "{:.1}x  {} segments{eta}{published}{lagging}",
        progress.speed, progress.segments
    )
}
