//! `stream-pack record`: presentation of the library's recorder (one recording, or a schedule).

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use stream_pack::input::live::LiveSource;
use stream_pack::progress::Cancel;
use stream_pack::tools::record::schedule::{self, Job};
use stream_pack::tools::record::time::{StartAt, parse_duration};
use stream_pack::tools::record::{RecordOptions, RecordProgress, RecordReport, record};

use crate::args::{JobArgs, ProgressArg};
use crate::cancel_on_ctrl_c;

#[derive(clap::Args)]
pub struct RecordArgs {
    /// The source: rtmp://, srt://, http(s):// (live HLS or DASH), or a file.
    #[arg(required_unless_present_any = ["capture", "schedule"], conflicts_with_all = ["capture", "schedule"])]
    url: Option<String>,
    /// A capture device instead: lavfi:GRAPH, v4l2:/dev/video0 or x11grab::0.0.
    #[arg(long, conflicts_with = "schedule")]
    capture: Option<String>,
    /// Run the recordings of this TOML file, all at once (see README).
    #[arg(long)]
    schedule: Option<PathBuf>,
    /// The file to make: .mp4, .mov, .ts, .mkv or .flv.
    #[arg(short, long, required_unless_present = "schedule", conflicts_with = "schedule")]
    output: Option<PathBuf>,
    /// When to start: 2026-12-01T20:00:00+09:00, 20:00 (local), or +10m.
    #[arg(long, value_parser = parse_start, conflicts_with = "schedule")]
    at: Option<StartAt>,
    /// How long to record, gaps included (90s, 10m, 1h30m); default: until the source is gone.
    #[arg(long = "for", value_parser = parse_duration, conflicts_with = "schedule")]
    duration: Option<Duration>,
    /// A new file every DURATION, cut at a keyframe: NAME-000.EXT, NAME-001.EXT…
    #[arg(long, value_parser = parse_duration, conflicts_with = "schedule")]
    split: Option<Duration>,
    /// How long a source may take to start sending (as for hls/dash --live).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    open_timeout: Duration,
    /// How long a source may send nothing before it counts as dropped and is reconnected.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    stall_timeout: Duration,
    /// Without --for: how long to keep reconnecting to a dropped source before finishing.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    reconnect_window: Duration,
    #[command(flatten)]
    job: JobArgs,
}

fn parse_start(text: &str) -> Result<StartAt, String> {
    text.parse()
}

impl RecordArgs {
    /// What the command line sets for every recording.
    fn configure(&self, options: &mut RecordOptions) {
        options.open_timeout = self.open_timeout;
        options.stall_timeout = self.stall_timeout;
        options.reconnect_window = self.reconnect_window;
        options.force = self.job.force;
    }

    fn quiet(&self) -> bool {
        self.job.quiet
    }
}

pub fn run(args: &RecordArgs) -> anyhow::Result<()> {
    let cancel = cancel_on_ctrl_c()?;
    match &args.schedule {
        Some(path) => run_schedule(args, path, &cancel),
        None => run_one(args, &cancel),
    }
}

fn run_one(args: &RecordArgs, cancel: &Cancel) -> anyhow::Result<()> {
    let source = match (&args.url, &args.capture) {
        (Some(url), _) => LiveSource::parse(url),
        (None, Some(spec)) => LiveSource::capture(spec)?,
        (None, None) => unreachable!("clap requires a URL or --capture"),
    };
    let mut options = RecordOptions::new(source, args.output.clone().expect("clap requires --output"));
    args.configure(&mut options);
    options.duration = args.duration;
    options.split = args.split;
    if let Some(at) = &args.at {
        let start = at.resolve(&jiff::Zoned::now()).map_err(stream_pack::Error::Usage)?;
        if !args.quiet() {
            println!("waiting until {}", start.description);
        }
        options.start = Some(start.at);
    }
    let bar = progress_bar(args, None);
    let report = record(&options, cancel, &mut |p: &RecordProgress| {
        show(args, bar.as_ref(), None, p)
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = report?;
    if !args.quiet() {
        println!("{}", summary(&report));
        for output in &report.outputs {
            println!("output: {}", output.display());
        }
    }
    Ok(())
}

fn run_schedule(args: &RecordArgs, path: &std::path::Path, cancel: &Cancel) -> anyhow::Result<()> {
    let jobs = schedule::load(path, &jiff::Zoned::now(), args.job.force, |o| args.configure(o))?;
    let bars = MultiProgress::new();
    let job_bars: Vec<Option<ProgressBar>> = jobs
        .iter()
        .map(|job| progress_bar(args, Some(job)).map(|bar| bars.add(bar)))
        .collect();
    if !args.quiet() {
        for job in &jobs {
            let when = job
                .start
                .as_ref()
                .map_or_else(|| "now".to_owned(), |s| s.description.clone());
            println!("job {} {}: starts {when}", job.number, job.options.output.display());
        }
    }
    let results = schedule::run(&jobs, cancel, &|index, p| {
        show(args, job_bars[index].as_ref(), Some(&jobs[index]), p)
    });
    for bar in job_bars.iter().flatten() {
        bar.finish_and_clear();
    }
    let mut failed = Vec::new();
    for (job, result) in jobs.iter().zip(results) {
        let name = format!("job {} {}", job.number, job.options.output.display());
        match result {
            Ok(report) if !args.quiet() => println!("{name}: {}", summary(&report)),
            Ok(_) => {}
            Err(error) => {
                if !args.quiet() {
                    println!("{name}: failed: {error}");
                }
                failed.push((name, error));
            }
        }
    }
    let count = failed.len();
    match failed.into_iter().next() {
        None => Ok(()),
        Some((name, error)) => Err(anyhow::Error::new(error).context(format!(
            "{count} of {} recordings failed; the first, {name}",
            jobs.len()
        ))),
    }
}

/// A line per recording on a terminal (hidden elsewhere), unless other progress was asked for.
fn progress_bar(args: &RecordArgs, job: Option<&Job>) -> Option<ProgressBar> {
    if args.quiet() || args.job.progress != ProgressArg::Bar {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {prefix}{msg}").expect("valid template"));
    if let Some(job) = job {
        bar.set_prefix(format!("job {} {}: ", job.number, job.options.output.display()));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

fn show(args: &RecordArgs, bar: Option<&ProgressBar>, job: Option<&Job>, progress: &RecordProgress) {
    if let Some(bar) = bar {
        bar.set_message(format!(
            "{:<12} {}  {:.1} MB  {} reconnects",
            format!("{:?}", progress.phase).to_lowercase(),
            clock(progress.recorded),
            progress.bytes as f64 / 1e6,
            progress.reconnects
        ));
    }
    if args.job.progress == ProgressArg::Json && !args.quiet() {
        let line = serde_json::json!({ "job": job.map(|j| j.number), "progress": progress });
        eprintln!("{line}");
    }
}

/// `1:02:03.4`.
fn clock(seconds: f64) -> String {
    let whole = seconds as u64;
    format!("{}:{:02}:{:04.1}", whole / 3600, whole / 60 % 60, seconds % 60.0)
}

fn summary(report: &RecordReport) -> String {
    format!(
        "recorded {} ({:.1} MB) in {} file(s), {} reconnects, {} clock jumps stitched; {}",
        clock(report.recorded),
        report.bytes as f64 / 1e6,
        report.outputs.len(),
        report.reconnects,
        report.discontinuities,
        report.ended
    )
}
