//! The `stream-pack` command: parses the command line and dispatches to one module per command,
//! which turns the arguments into the library's options and prints what the library reports.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stream_pack::error::exit;
use stream_pack::progress::Cancel;

use crate::args::InputArgs;
use crate::package::{DashArgs, HlsArgs};
use crate::tools::{ConcatArgs, ConvertArgs, UnframeArgs};

mod args;
mod docs;
mod flags;
mod monitor;
mod package;
mod record;
mod report;
mod scale_out;
mod tools;

#[derive(Parser)]
#[command(
    name = "stream-pack",
    version,
    about = "Package media into HLS and DASH ladders in one pass, and reassemble captured streams, with FFmpeg's libraries in-process"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Transcode a file into an HLS ladder: master.m3u8, one folder per rung, audio/.
    Hls(HlsArgs),
    /// Transcode a file into a DASH ladder of CMAF segments: manifest.mpd, one folder per rung, audio/.
    Dash(DashArgs),
    /// Plan an hls or dash run into chunks for an array-job engine: PLAN/plan.json.
    Plan(scale_out::PlanArgs),
    /// Encode one task of a plan (a chunk's rungs, or the audio) into PLAN/chunks/I.
    EncodeChunk(scale_out::EncodeChunkArgs),
    /// Check every chunk of a plan and put the package together, to the plan's destinations.
    Assemble(scale_out::AssembleArgs),
    /// Show the container and stream facts of a file.
    Probe {
        input: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        timeouts: InputArgs,
    },
    /// Join FLV chunks of one stream into one .flv, or an .mp4 without re-encoding.
    ConcatFlv(ConcatArgs),
    /// Turn a tagged websocket capture of fragmented MP4 (a file, or live with --ws) into an MP4.
    Unframe(UnframeArgs),
    /// Copy anything libav reads (fMP4, TS, FLV, an HLS or DASH manifest or URL) into a progressive MP4.
    Remux {
        /// A file, a manifest, or a URL.
        input: String,
        /// The MP4 to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Replace an existing output.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        timeouts: InputArgs,
    },
    /// Repackage an HLS or DASH presentation as HLS or DASH, copying the media when the codecs allow.
    Convert(ConvertArgs),
    /// Show the box tree of an MP4/fMP4 or the tags of an FLV, and the problems found in it.
    Inspect {
        input: PathBuf,
        /// Print JSON instead of a listing (one object, an entry per line, written as read).
        #[arg(long)]
        json: bool,
        /// Print only the problems.
        #[arg(long, conflicts_with = "json")]
        problems: bool,
        /// The init segment of a media segment (.m4s): its timescales and track defaults.
        #[arg(long)]
        init: Option<PathBuf>,
    },
    /// Record a live source (RTMP, SRT, live HLS/DASH, a capture device) without re-encoding,
    /// at a given time, for a given duration, reconnecting when it drops; or a schedule of them.
    Record(record::RecordArgs),
    /// Print a completion script for a shell, e.g. `stream-pack completions bash > /etc/bash_completion.d/stream-pack`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `stream-pack man | man -l -`.
    Man,
}

/// The job's cancel, cancelled by Ctrl-C (SIGINT, SIGTERM): every job and every blocked open and
/// read of an input watches it.
pub fn cancel_on_ctrl_c() -> anyhow::Result<Cancel> {
    let cancel = Cancel::new();
    let handle = cancel.clone();
    ctrlc::set_handler(move || handle.cancel()).context("installing the Ctrl-C handler")?;
    Ok(cancel)
}

/// stream-pack's own log (retries of uploads and downloads, at `info`) goes to stderr when
/// `STREAM_PACK_LOG` asks for it (`info`, `debug`, or any tracing filter such as
/// `stream_pack=info,object_store=info`); otherwise stderr keeps to errors and progress.
fn log_if_asked() {
    if let Ok(filter) = std::env::var("STREAM_PACK_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    }
}

/// x264 asks for transparent huge pages for every buffer of 2 MB or more and rounds each up to
/// whole huge pages, which the kernel zeroes and keeps resident even where x264 never writes.
/// Without them a six-rung 1080p ladder took 1.0 s less system time, 0.4 s more user time and
/// 27 MB less memory (bench/RESULTS.md). Best effort: a kernel without the switch changes nothing.
fn without_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

fn main() -> ExitCode {
    if std::env::var_os("SVT_LOG").is_none() {
        // SVT-AV1 logs its configuration to stderr unless told otherwise; errors only.
        // SAFETY: no other thread exists yet to read the environment concurrently.
        unsafe { std::env::set_var("SVT_LOG", "1") };
    }
    log_if_asked();
    without_huge_pages();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            eprintln!("{}", one_line(&e.to_string()));
            return ExitCode::from(exit::USAGE as u8);
        }
        Err(e) => e.exit(),
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", each_cause_once(&error));
            let code = error
                .downcast_ref::<stream_pack::Error>()
                .map_or(exit::FAILURE, stream_pack::Error::exit_code);
            ExitCode::from(code as u8)
        }
    }
}

/// Runs one command.
fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Hls(args) => package::hls(&args),
        Command::Dash(args) => package::dash(&args),
        Command::Plan(args) => scale_out::plan(&args),
        Command::EncodeChunk(args) => scale_out::encode_chunk(&args),
        Command::Assemble(args) => scale_out::assemble(&args),
        Command::Probe { input, json, timeouts } => tools::probe(&input, json, &timeouts),
        Command::ConcatFlv(args) => tools::concat_flv(&args),
        Command::Unframe(args) => tools::unframe(&args),
        Command::Remux {
            input,
            output,
            force,
            timeouts,
        } => tools::remux(&input, &output, force, &timeouts),
        Command::Convert(args) => tools::convert(&args),
        Command::Inspect {
            input,
            json,
            problems,
            init,
        } => tools::inspect(&input, init.as_deref(), json, problems),
        Command::Record(args) => record::run(&args),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man => docs::man(),
    }
}

/// The error and its causes on one line, each said once: the library's errors already end with
/// their source's text (an `Io` error's OS message, an `Ffmpeg` error's libav message), which
/// anyhow's `{:#}` would print a second time.
fn each_cause_once(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain().map(flags::in_cli_terms) {
        if line.is_empty() {
            line = cause;
        } else if !line.ends_with(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    // A message of several lines (a parser's, a file name holding a newline) still makes one line.
    line.lines()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Clap's message up to its usage hint, on one line: the bad option and why.
fn one_line(message: &str) -> String {
    message
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}
