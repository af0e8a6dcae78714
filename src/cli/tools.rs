//! The standalone commands: `probe`, `concat-flv`, `unframe`, `remux`, `convert` and `inspect`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ValueEnum;
use stream_pack::location::Location;
use stream_pack::tools::concat_flv::{self, DownloadOptions};
use stream_pack::tools::convert::{ConvertOptions, Target};
use stream_pack::tools::record::time::parse_duration;
use stream_pack::tools::remux;
use stream_pack::tools::unframe::{self, UnframeOptions, WebSocketSource};

use crate::args::{DestinationArgs, FormatArg, InputArgs, JobArgs, parse_header};
use crate::cancel_on_ctrl_c;
use crate::report::{print_file, print_report, unless_broken_pipe, write_stdout};

#[derive(clap::Args)]
pub struct ConcatArgs {
    /// Chunk files in order, or a quoted pattern (`'chunk*.flv'`, taken in natural order).
    #[arg(required_unless_present = "list", conflicts_with = "list")]
    chunks: Vec<String>,
    /// A file of chunk URLs, one per line, downloaded and joined in that order.
    #[arg(long)]
    list: Option<PathBuf>,
    /// The joined file: .flv, or .mp4 (remuxed, no re-encoding).
    #[arg(short, long)]
    output: PathBuf,
    /// Downloads at once (with --list).
    #[arg(long, default_value_t = 4, requires = "list", value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,
    /// Further attempts after a failed download (with --list).
    #[arg(long, default_value_t = 3, requires = "list")]
    retries: u32,
    /// Replace an existing output.
    #[arg(long)]
    force: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct UnframeArgs {
    /// A capture file: each websocket message as a 4-byte big-endian length and the message.
    #[arg(required_unless_present = "ws", conflicts_with = "ws")]
    capture: Option<PathBuf>,
    /// Capture live from this ws:// or wss:// URL instead.
    #[arg(long)]
    ws: Option<String>,
    /// How long to capture (90s, 10m, 1h); default: until the server closes or Ctrl-C.
    #[arg(long = "for", requires = "ws", value_parser = parse_duration)]
    duration: Option<std::time::Duration>,
    /// An extra request header for --ws, as `Name: value` (repeatable).
    #[arg(long, requires = "ws", value_parser = parse_header)]
    header: Vec<(String, String)>,
    /// A text message to send once connected (repeatable).
    #[arg(long, requires = "ws")]
    send: Vec<String>,
    /// The MP4 to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Keep the fragmented MP4 as assembled instead of defragmenting it.
    #[arg(long)]
    keep_fragmented: bool,
    /// Replace an existing output.
    #[arg(long)]
    force: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// An HLS playlist (.m3u8) or DASH manifest (.mpd): a file or a URL.
    input: String,
    #[command(flatten)]
    timeouts: InputArgs,
    /// What to make.
    #[arg(long, value_enum)]
    to: TargetArg,
    #[command(flatten)]
    destination: DestinationArgs,
    /// Segment container for --to hls (dash is always CMAF).
    #[arg(long, value_enum, default_value_t = FormatArg::Fmp4)]
    format: FormatArg,
    /// Seconds per segment (a stream copy cuts at the nearest keyframes).
    #[arg(long, default_value_t = 6.0, allow_negative_numbers = true)]
    segment_duration: f64,
    #[command(flatten)]
    job: JobArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum TargetArg {
    Hls,
    Dash,
}

pub fn probe(input: &Path, json: bool, timeouts: &InputArgs) -> anyhow::Result<()> {
    let info = stream_pack::probe(input, &timeouts.options(cancel_on_ctrl_c()?))?;
    let text = if json {
        serde_json::to_string_pretty(&info).context("serialising the probe")? + "\n"
    } else {
        info.to_string()
    };
    write_stdout(text.as_bytes())
}

pub fn concat_flv(args: &ConcatArgs) -> anyhow::Result<()> {
    let report = match &args.list {
        Some(list) => {
            let options = DownloadOptions {
                jobs: args.jobs as usize,
                retries: args.retries,
                ..DownloadOptions::default()
            };
            concat_flv::concat_list(list, &args.output, args.force, options)?
        }
        None => concat_flv::concat_flv(&concat_flv::chunk_paths(&args.chunks)?, &args.output, args.force)?,
    };
    if !args.quiet {
        let summary = [
            format!(
                "joined {} chunks ({} restarted their timestamps): {} video frames, {} audio frames, {:.3} s",
                report.chunks, report.restarts, report.video_frames, report.audio_frames, report.duration
            ),
            format!(
                "dropped {} repeated onMetaData and {} repeated sequence headers; kept {} changed sequence headers",
                report.dropped_metadata, report.dropped_sequence_headers, report.changed_sequence_headers
            ),
        ];
        print_file(&report.notes, &summary, report.remux.as_ref(), &report.output);
    }
    Ok(())
}

pub fn unframe(args: &UnframeArgs) -> anyhow::Result<()> {
    let options = UnframeOptions {
        output: args.output.clone(),
        keep_fragmented: args.keep_fragmented,
        replace: args.force,
    };
    let report = match (&args.capture, &args.ws) {
        (Some(capture), _) => unframe::unframe_file(capture, &options)?,
        (None, Some(url)) => {
            let stop = cancel_on_ctrl_c()?;
            let source = WebSocketSource {
                url: url.clone(),
                duration: args.duration,
                headers: args.header.clone(),
                send: args.send.clone(),
            };
            unframe::unframe_websocket(&source, &options, &stop)?
        }
        (None, None) => unreachable!("clap requires a capture file or --ws"),
    };
    if !args.quiet {
        let assembled = &report.assembled;
        let summary = [format!(
            "{} messages, {} fragments, {} bytes of fragmented MP4",
            assembled.messages, assembled.fragments, assembled.bytes
        )];
        print_file(&report.notes, &summary, report.remux.as_ref(), &report.output);
    }
    Ok(())
}

pub fn remux(input: &str, output: &Path, force: bool, timeouts: &InputArgs) -> anyhow::Result<()> {
    let options = timeouts.options(cancel_on_ctrl_c()?);
    let report = remux::remux(&Location::parse(input), output, force, &options)?;
    print_file(&[], &[], Some(&report), &report.output);
    Ok(())
}

pub fn convert(args: &ConvertArgs) -> anyhow::Result<()> {
    let target = match args.to {
        TargetArg::Dash => Target::Dash,
        TargetArg::Hls => Target::Hls(args.format.segment_format()),
    };
    let (output, publishing) = args.destination.publishing()?;
    let mut monitor = args.job.monitor();
    let options = ConvertOptions {
        input: Location::parse(&args.input),
        output,
        target,
        segment_duration: args.segment_duration,
        force: args.job.force,
        publishing,
        input_options: args.timeouts.options(cancel_on_ctrl_c()?),
    };
    let report = stream_pack::tools::convert::convert(&options, &mut monitor);
    monitor.close();
    let report = report?;
    if !args.job.quiet {
        match &report.transcoded_because {
            Some(reason) => eprintln!("note: transcoded: {reason}"),
            None => eprintln!("note: repackaged without re-encoding"),
        }
        print_report(&report.package);
    }
    Ok(())
}

pub fn inspect(input: &Path, init: Option<&Path>, json: bool, problems_only: bool) -> anyhow::Result<()> {
    use stream_pack::tools::inspect::{Inspector, Style};
    let mut inspector = Inspector::open(input)?;
    if let Some(init) = init {
        inspector = inspector.with_init(init)?;
    }
    let style = match (json, problems_only) {
        (true, _) => Style::Json,
        (false, true) => Style::Problems,
        (false, false) => Style::Listing,
    };
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let (inspection, written) = inspector.print(style, stdout)?;
    unless_broken_pipe(written)?;
    match inspection.problems.as_slice() {
        [] => Ok(()),
        [only] if inspection.problem_count() == 1 => Err(problems_error(input, format!("a problem found: {only}"))),
        [first, ..] => Err(problems_error(
            input,
            format!("{} problems found; the first: {first}", inspection.problem_count()),
        )),
    }
}

fn problems_error(input: &Path, reason: String) -> anyhow::Error {
    stream_pack::Error::InputCorrupt {
        path: input.to_owned(),
        reason,
    }
    .into()
}
