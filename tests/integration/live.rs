//! Live packaging (`--live`): the manifests are read while stream-pack writes them, as a player
//! would, and judged at every read; what is left at the end is decoded by ffmpeg.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::util::cli::{self, FAST};
use crate::util::ffprobe::assert_decodes_cleanly;
use crate::util::m3u8::{MediaPlaylist, parse_media, read_master, unix_seconds};
use crate::util::mpd::parse_mpd;
use crate::util::rtmp::{Publisher, RtmpServer};
use crate::util::{file_names, media};

const BIN: &str = env!("CARGO_BIN_EXE_stream-pack");
pub(crate) const RENDITIONS: [&str; 3] = ["180p", "144p", "audio"];

/// stream-pack running a live job, with every manifest state seen while it ran.
pub(crate) struct LiveRun {
    out: PathBuf,
    child: Child,
    started: Instant,
}

impl LiveRun {
    pub(crate) fn start(command: &str, input: &[&str], out: &Path, extra: &[&str]) -> LiveRun {
        let child = Command::new(BIN)
            .arg(command)
            .args(input)
            .args(["-o", out.to_str().unwrap(), "--live", "--progress", "none"])
            .args(["--reps", "180,144", "--segment-duration", "1"])
            .args(FAST)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start stream-pack");
        LiveRun {
            out: out.to_owned(),
            child,
            started: Instant::now(),
        }
    }

    /// Calls `look` every 100 ms until the process ends (at most `limit`); its exit status.
    pub(crate) fn watch(&mut self, limit: Duration, mut look: impl FnMut(&Path, Duration)) -> ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for stream-pack") {
                return status;
            }
            assert!(self.started.elapsed() < limit, "the live job ran longer than {limit:?}");
            look(&self.out, self.started.elapsed());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn stderr(&mut self) -> String {
        let mut text = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut text).unwrap();
        text
    }
}

/// A media playlist read while it may be replaced: `None` until it first exists. A half-written
/// playlist would fail to parse, which is what the atomic replacement must prevent.
pub(crate) fn read_live(path: &Path) -> Option<MediaPlaylist> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(parse_media(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display())))
}

/// The number in `segment00012.ts`.
pub(crate) fn number(uri: &str) -> u64 {
    uri.trim_start_matches("segment")
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected segment name {uri}"))
}

/// What the reads of one rendition's playlist saw.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) states: usize,
    pub(crate) sequences: Vec<u64>,
    targets: BTreeSet<u64>,
    /// For every segment, when it was last seen listed.
    listed_at: BTreeMap<String, Duration>,
}

impl Seen {
    /// Checks one read of a sliding window of `window` segments lasting `target` seconds each.
    pub(crate) fn look(&mut self, dir: &Path, window: usize, now: Duration) {
        let Some(playlist) = read_live(&dir.join("index.m3u8")) else {
            return;
        };
        self.states += 1;
        // The closing playlist takes each rendition to its own end: audio's last frames may make
        // one segment more (the caller checks the count at the end).
        let window = if playlist.endlist { window + 1 } else { window };
        assert!(
            playlist.segments.len() <= window,
            "{} segments listed",
            playlist.segments.len()
        );
        assert!(
            playlist.playlist_type.is_none(),
            "a sliding window has no PLAYLIST-TYPE"
        );
        let first = playlist.segments.first().map(|s| number(&s.uri));
        assert_eq!(
            first,
            Some(playlist.media_sequence),
            "EXT-X-MEDIA-SEQUENCE names the first segment"
        );
        if let Some(last) = self.sequences.last() {
            assert!(playlist.media_sequence >= *last, "the media sequence went back");
        }
        self.sequences.push(playlist.media_sequence);
        self.targets.insert(playlist.target_duration);
        let mut previous_date: Option<(f64, f64)> = None;
        for (i, segment) in playlist.segments.iter().enumerate() {
            assert_eq!(
                number(&segment.uri),
                playlist.media_sequence + i as u64,
                "numbers follow on"
            );
            assert!(
                dir.join(&segment.uri).exists(),
                "{} listed before it was written",
                segment.uri
            );
            let date = segment.date.expect("EXT-X-PROGRAM-DATE-TIME on every segment");
            if let Some((before, duration)) = previous_date {
                let gap: f64 = date - before;
                let duration: f64 = duration;
                assert!(
                    (gap - duration).abs() < 0.002,
                    "program date-times {gap} s apart for {duration} s"
                );
            }
            previous_date = Some((date, segment.duration));
            self.listed_at.insert(segment.uri.clone(), now);
        }
        // A segment seen listed at T left the playlist after T, so it may not go before
        // T + one target duration (50 ms allowed for this read's own timing).
        let target = Duration::from_secs(playlist.target_duration);
        for (uri, listed) in &self.listed_at {
            if now + Duration::from_millis(50) < *listed + target {
                assert!(
                    dir.join(uri).exists(),
                    "{uri} deleted less than a target duration after it left"
                );
            }
        }
    }
}

/// After a presentation with a window of `window` segments has ended: the reads saw the window
/// move under one EXT-X-TARGETDURATION, and the last playlist is closed, lists `window` segments,
/// decodes cleanly, and they are all that is left in the folder (what left the window is gone).
fn assert_closed_window(dir: &Path, seen: &Seen, window: usize) -> MediaPlaylist {
    let last = assert_closed(dir, seen, window..=window);
    assert_decodes_cleanly(&dir.join("index.m3u8"));
    last
}

/// [`assert_closed_window`] but for the decoding, with `listed` segments at the end (an audio
/// rendition ends with its own last frames, which may make one segment more).
pub(crate) fn assert_closed(dir: &Path, seen: &Seen, listed: std::ops::RangeInclusive<usize>) -> MediaPlaylist {
    let name = dir.display();
    assert!(
        seen.sequences.windows(2).any(|w| w[1] > w[0]),
        "{name}: the window never moved"
    );
    // LiveRun cuts 1 s segments: the target is 1 in every read.
    assert_eq!(seen.targets, BTreeSet::from([1]), "{name}: EXT-X-TARGETDURATION");
    let last = read_live(&dir.join("index.m3u8")).unwrap();
    assert!(last.endlist, "{name}: the presentation was not closed with ENDLIST");
    assert!(
        listed.contains(&last.segments.len()),
        "{name}: {} segments listed at the end",
        last.segments.len()
    );
    let mut expected: BTreeSet<String> = last.segments.iter().map(|s| s.uri.clone()).collect();
    expected.insert("index.m3u8".into());
    assert_eq!(file_names(dir), expected, "{name}: files left on disk");
    last
}

#[test]
fn a_live_hls_window_slides_numbers_on_and_deletes_what_left() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("live");
    let source = media("main");
    let mut run = LiveRun::start(
        "hls",
        &[source.to_str().unwrap()],
        &out,
        &["--window", "3", "--delete-segments"],
    );
    let mut seen: BTreeMap<&str, Seen> = RENDITIONS.iter().map(|r| (*r, Seen::default())).collect();
    let status = run.watch(Duration::from_secs(60), |out, now| {
        for (name, seen) in &mut seen {
            seen.look(&out.join(name), 3, now);
        }
    });
    assert!(status.success(), "{}", run.stderr());
    // The 8 s source is read at its own pace, so the window was seen moving.
    assert!(run.started.elapsed() >= Duration::from_secs(8));
    for (name, seen) in &seen {
        assert!(seen.states >= 20, "{name}: read {} times", seen.states);
        let last = assert_closed_window(&out.join(name), seen, 3);
        assert_eq!(last.media_sequence, 5, "{name}: 8 segments, the last 3 kept");
    }
    let master = read_master(&out.join("master.m3u8"));
    assert_eq!(master.variants.len(), 2);
}

#[test]
fn a_live_ladder_from_rtmp_slides_while_the_broadcast_runs_and_closes_when_it_stops() {
    let server = RtmpServer::start();
    let url = server.url("ladder");
    let mut publisher = Publisher::start(&url);
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("rtmp");
    let mut run = LiveRun::start(
        "hls",
        &[&url],
        &out,
        &["--window", "3", "--delete-segments", "--stall-timeout", "3s"],
    );
    let mut seen: BTreeMap<&str, Seen> = RENDITIONS.iter().map(|r| (*r, Seen::default())).collect();
    let mut stopped_at = None;
    let status = run.watch(Duration::from_secs(90), |out, now| {
        for (name, seen) in &mut seen {
            seen.look(&out.join(name), 3, now);
        }
        // Six segments in, the broadcaster goes away.
        if stopped_at.is_none() && seen["180p"].sequences.last().is_some_and(|s| *s >= 3) {
            publisher.stop();
            stopped_at = Some(now);
        }
    });
    let stderr = run.stderr();
    assert!(status.success(), "{stderr}\nnginx: {}", server.log());
    assert!(stopped_at.is_some(), "the window never reached segment 3");
    for (name, seen) in &seen {
        assert_closed_window(&out.join(name), seen, 3);
    }
}

#[test]
fn a_live_event_playlist_keeps_every_segment_and_ends_with_the_source() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("event");
    let source = media("short");
    let mut run = LiveRun::start("hls", &[source.to_str().unwrap()], &out, &[]);
    let mut counts = Vec::new();
    let status = run.watch(Duration::from_secs(60), |out, _| {
        if let Some(playlist) = read_live(&out.join("180p/index.m3u8")) {
            assert_eq!(playlist.playlist_type.as_deref(), Some("EVENT"));
            assert_eq!(playlist.media_sequence, 0);
            counts.push(playlist.segments.len());
        }
    });
    assert!(status.success(), "{}", run.stderr());
    assert!(
        counts.windows(2).all(|w| w[1] >= w[0]),
        "an event playlist only grows: {counts:?}"
    );
    let last = read_live(&out.join("180p/index.m3u8")).unwrap();
    assert!(last.endlist);
    assert_eq!(last.segments.len(), 2, "the 2 s source in 1 s segments");
    assert_decodes_cleanly(&out.join("master.m3u8"));
}

#[test]
fn a_live_dash_manifest_is_dynamic_while_it_runs_and_static_at_the_end() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("dash");
    let source = media("main");
    let mut run = LiveRun::start("dash", &[source.to_str().unwrap()], &out, &["--window", "4"]);
    let mut dynamic_reads = 0;
    let status = run.watch(Duration::from_secs(60), |out, _| {
        let Ok(text) = std::fs::read_to_string(out.join("manifest.mpd")) else {
            return;
        };
        let mpd = parse_mpd(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        if mpd.attributes.get("type") != Some("dynamic") {
            return;
        }
        dynamic_reads += 1;
        for name in ["availabilityStartTime", "publishTime", "minimumUpdatePeriod"] {
            assert!(mpd.attributes.get(name).is_some(), "a dynamic MPD needs @{name}");
        }
        assert_eq!(mpd.attributes.seconds("timeShiftBufferDepth"), 4.0);
        // The packager's clock is given directly: it is the publish time.
        let [timing] = &mpd.utc_timing[..] else {
            panic!("one UTCTiming in a dynamic MPD: {text}");
        };
        assert_eq!(timing.get("schemeIdUri"), Some("urn:mpeg:dash:utc:direct:2014"));
        let clock = unix_seconds(timing.get("value").unwrap()).unwrap();
        let published = unix_seconds(mpd.attributes.get("publishTime").unwrap()).unwrap();
        assert!(
            (clock - published).abs() < 0.002,
            "UTCTiming {clock} against publishTime {published}"
        );
        // The newest segment was written just before this MPD was published: the time the MPD
        // says it became available (availabilityStartTime + its end) must be that time, not
        // seconds earlier (a client would ask for segments not yet written) or later.
        let available_from = unix_seconds(mpd.attributes.get("availabilityStartTime").unwrap()).unwrap();
        assert!(mpd.attributes.get("mediaPresentationDuration").is_none());
        for set in &mpd.adaptation_sets {
            for representation in &set.representations {
                let template = &representation.segment_template;
                let segments = template.segments();
                assert!(!segments.is_empty() && segments.len() <= 4, "{} listed", segments.len());
                let first: u64 = template.attributes.parse("startNumber");
                let id = representation.attributes.get("id").unwrap();
                for n in first..first + segments.len() as u64 {
                    let file = out.join(id).join(format!("segment{n:05}.m4s"));
                    assert!(file.exists(), "{} listed before it was written", file.display());
                }
                // Each S follows on from the one before (no gaps inside the window).
                assert!(segments.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
                let pto: u64 = template.attributes.parse("presentationTimeOffset");
                let timescale: f64 = template.attributes.parse("timescale");
                let (start, duration) = *segments.last().unwrap();
                let end = (start + duration).saturating_sub(pto) as f64 / timescale;
                let early = published - (available_from + end);
                assert!(
                    early.abs() < 0.4,
                    "{id}: its newest segment is said available {early:.2} s before it was"
                );
            }
        }
    });
    assert!(status.success(), "{}", run.stderr());
    assert!(dynamic_reads >= 10, "read the dynamic MPD {dynamic_reads} times");
    let mpd = crate::util::mpd::read_mpd(&out.join("manifest.mpd"));
    assert_eq!(mpd.attributes.get("type"), Some("static"));
    let duration = mpd.attributes.seconds("mediaPresentationDuration");
    assert!(
        (duration - 4.0).abs() < 0.1,
        "the last 4 one-second segments: {duration} s"
    );
    for set in &mpd.adaptation_sets {
        for representation in &set.representations {
            let template = &representation.segment_template;
            assert_eq!(template.attributes.parse::<u64>("startNumber"), 4);
            let pto: u64 = template.attributes.parse("presentationTimeOffset");
            let timescale: u64 = template.attributes.parse("timescale");
            let first = template.segments()[0].0;
            // The period starts where the first listed segment does (audio within a frame).
            assert!(
                first.abs_diff(pto) * 1000 / timescale <= 25,
                "first @t {first}, PTO {pto}"
            );
        }
    }
    assert_decodes_cleanly(&out.join("manifest.mpd"));
}

#[test]
fn ctrl_c_ends_an_endless_live_source_cleanly() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("capture");
    let graph = "lavfi:testsrc2=size=320x180:rate=25[out0];sine=frequency=440:sample_rate=48000[out1]";
    let mut run = LiveRun::start("hls", &["--capture", graph], &out, &["--window", "5"]);
    let pid = run.child.id().to_string();
    let mut interrupted = false;
    let status = run.watch(Duration::from_secs(60), |out, _| {
        let listed = read_live(&out.join("180p/index.m3u8")).map_or(0, |p| p.segments.len());
        if listed >= 3 && !interrupted {
            let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
            assert!(kill.success());
            interrupted = true;
        }
    });
    assert!(interrupted, "the capture never listed 3 segments");
    assert!(
        status.success(),
        "Ctrl-C ends the presentation, not the job: {}",
        run.stderr()
    );
    let last = read_live(&out.join("180p/index.m3u8")).unwrap();
    assert!(last.endlist, "the stopped presentation is closed with ENDLIST");
    assert!(last.segments.len() >= 3);
    assert_decodes_cleanly(&out.join("master.m3u8"));
}

#[test]
fn a_live_source_that_never_starts_fails_after_the_open_timeout() {
    // A server that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rtmp://{}/live/none", listener.local_addr().unwrap());
    let root = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = cli::run([
        "hls",
        &url,
        "-o",
        root.path().join("out").to_str().unwrap(),
        "--live",
        "--open-timeout",
        "2s",
    ]);
    let message = cli::assert_failure(&output, 3);
    assert!(message.contains(&url) && message.contains("2"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up after {:?}",
        started.elapsed()
    );
    assert!(!root.path().join("out/master.m3u8").exists());
    drop(listener);
}

#[test]
fn impossible_live_options_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let source = media("tiny");
    for (extra, words) in [
        (&["--live", "--window", "0"][..], &["--window", "at least 1"][..]),
        (&["--live", "--copy"][..], &["--copy", "live"][..]),
    ] {
        let output = cli::hls(&source, &out, extra);
        cli::assert_says(&output, words, &format!("{extra:?}"));
        assert!(!out.exists());
    }
    // Clap: --delete-segments needs --window, --window needs --live.
    for extra in [&["--live", "--delete-segments"][..], &["--window", "3"][..]] {
        let output = cli::hls(&source, &out, extra);
        cli::assert_failure(&output, 2);
    }
}
