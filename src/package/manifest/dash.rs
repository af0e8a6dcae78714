//! The DASH MPD (ISO/IEC 23009-1, DASH-IF IOP): static (dynamic while live), isoff-live profile, a SegmentTemplate with
//! a SegmentTimeline per Representation whose times are the fragments' own tfdt.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use dash_mpd_core::{
    Accessibility, AdaptationSet, AudioChannelConfiguration, CencPssh, ContentProtection, Label, Laurl, MPD, Period,
    Representation, Role, S, SegmentTemplate, SegmentTimeline, UTCTiming,
};

use super::{AudioTrack, LiveState, Package, WrittenManifest, millis, peak_bitrate, write};
use crate::error::Result;
use crate::package::crypto::{CommonKey, DrmSystem};
use crate::package::language;
use crate::package::segment::{INIT_SEGMENT, SegmentFacts, SegmentedStream};

pub const MANIFEST: &str = "manifest.mpd";
const PROFILE: &str = "urn:mpeg:dash:profile:isoff-live:2011";
const NAMESPACE: &str = "urn:mpeg:dash:schema:mpd:2011";
const CHANNEL_CONFIGURATION: &str = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";
const ROLE: &str = "urn:mpeg:dash:role:2011";
const DASHIF_CPS: &str = "https://dashif.org/CPS";
/// The folder, inside each subtitle rendition's, of the WebVTT segments the static MPD of a live
/// presentation lists once its period moved (a window's, at the end: see [`live_period_start`]):
/// the same segments with cue times from the moved period's start, beside the files the dynamic
/// MPDs and the HLS playlists listed, which players may still be reading.
pub const MOVED_PERIOD_TEXT: &str = "period";
/// TV-Anytime's AudioPurposeCS (DASH-IF IOP §3.9.4.4): 1 is for the visually impaired, 2 for the
/// hard of hearing.
const PURPOSE: &str = "urn:tva:metadata:cs:AudioPurposeCS:2007";

/// Writes `manifest.mpd` into `root`.
pub fn write_manifest(root: &Path, package: &Package) -> Result<WrittenManifest> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n",
        dashif_laurl(mpd(package).to_string())
    );
    write(root, MANIFEST.into(), |w| {
        w.extend_from_slice(xml.as_bytes());
        Ok(())
    })
}

pub fn mpd(package: &Package) -> MPD {
    let target = package.target_duration();
    let mut adaptations = Vec::new();
    if !package.video.is_empty() {
        adaptations.push(video_adaptation(package, target));
    }
    for audio in &package.audio {
        let id = adaptations.len().to_string();
        adaptations.push(audio_adaptation(audio, id, package, target));
    }
    let first_text = adaptations.len();
    adaptations.extend(text_adaptations(package, first_text, target));
    let duration = package
        .renditions()
        .map(|(_, r)| presentation_end(&r.media, package))
        .fold(0.0, f64::max);
    let running = package.live.filter(|l| !l.ended);
    let seconds = |segments: u64| Duration::from_secs(segments * target);
    MPD {
        xmlns: Some(NAMESPACE.into()),
        profiles: Some(PROFILE.into()),
        mpdtype: Some(if running.is_some() { "dynamic" } else { "static" }.into()),
        mediaPresentationDuration: running.is_none().then(|| Duration::from_secs_f64(millis(duration))),
        availabilityStartTime: running.map(|l| l.availability_start),
        // The packager's clock, so a client needs no time server to place the live edge.
        UTCTiming: running
            .map(|l| UTCTiming {
                schemeIdUri: "urn:mpeg:dash:utc:direct:2014".into(),
                value: Some(l.published.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        publishTime: package.live.map(|l| l.published),
        // Reloaded once per segment; a client may go back as far as the window reaches and starts
        // three segments behind the newest, as DASH-IF IOP suggests for low update rates.
        minimumUpdatePeriod: running.map(|_| seconds(1)),
        timeShiftBufferDepth: running.and_then(|l| l.window).map(|w| seconds(w as u64)),
        suggestedPresentationDelay: running.map(|_| seconds(3)),
        // A client holding one target duration of media can play on at the advertised bandwidth.
        minBufferTime: Some(Duration::from_secs(target)),
        periods: vec![Period {
            id: Some("0".into()),
            start: Some(Duration::ZERO),
            adaptations,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The ContentProtection descriptors of an AdaptationSet of audio (or video): none when clear.
fn protection(package: &Package, audio: bool) -> Vec<ContentProtection> {
    package
        .protection
        .map(|common| content_protection(common, audio))
        .unwrap_or_default()
}

/// The ContentProtection descriptors of a common-encrypted AdaptationSet (DASH-IF IOP §7.7.2):
/// the scheme with the default KID, then each signalled DRM system with its PSSH box.
fn content_protection(common: &CommonKey, audio: bool) -> Vec<ContentProtection> {
    let scheme = ContentProtection {
        schemeIdUri: "urn:mpeg:dash:mp4protection:2011".into(),
        value: Some(String::from_utf8_lossy(&common.scheme.fourcc()).into_owned()),
        default_KID: Some(common.kid(audio).uuid()),
        ..Default::default()
    };
    let systems = common.psshs(audio).into_iter().map(|(system, pssh)| ContentProtection {
        schemeIdUri: format!("urn:uuid:{}", system_id(system)),
        value: Some(system_name(system).into()),
        cenc_pssh: vec![CencPssh {
            content: Some(BASE64.encode(pssh)),
        }],
        laurl: licence_url(common, system).map(|url| Laurl {
            lic_type: Some("EME-1.0".into()),
            content: Some(url.into()),
        }),
        ..Default::default()
    });
    std::iter::once(scheme).chain(systems).collect()
}

/// The licence URL a system's ContentProtection names (DASH-IF IOP §7.7.2): ClearKey's, and
/// PlayReady's, which its header object in the `pssh` names too.
fn licence_url(common: &CommonKey, system: DrmSystem) -> Option<&str> {
    match system {
        DrmSystem::ClearKey => common.options.clearkey_la_url.as_deref(),
        DrmSystem::PlayReady => common.options.playready_la_url.as_deref(),
        DrmSystem::Widevine | DrmSystem::FairPlay => None,
    }
}

/// dash-mpd-core writes the licence URL element as `dashif:laurl` with no namespace declared;
/// players read `Laurl` in the DASH-IF content protection namespace (Shaka Player matches the
/// name exactly). Both tags are markup quick-xml wrote: text it wrote has `<` escaped.
fn dashif_laurl(xml: String) -> String {
    if !xml.contains("<dashif:laurl") {
        return xml;
    }
    xml.replacen("<MPD ", &format!("<MPD xmlns:dashif=\"{DASHIF_CPS}\" "), 1)
        .replace("<dashif:laurl", "<dashif:Laurl")
        .replace("</dashif:laurl>", "</dashif:Laurl>")
}

/// The UUID DASH names a DRM system by. ClearKey's is its own (DASH-IF IOP §7.6.2.6), not the
/// W3C common system ID its `pssh` carries.
pub fn system_id(system: DrmSystem) -> &'static str {
    match system {
        DrmSystem::ClearKey => "e2719d58-a985-b3c9-781a-b030af78d30e",
        DrmSystem::Widevine => "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",
        DrmSystem::PlayReady => "9a04f079-9840-4286-ab92-e65be0885f95",
        DrmSystem::FairPlay => "94ce86fb-07ff-4f43-adb8-93d2fa968ca2",
    }
}

fn system_name(system: DrmSystem) -> &'static str {
    match system {
        DrmSystem::ClearKey => "ClearKey1.0",
        DrmSystem::Widevine => "Widevine",
        DrmSystem::PlayReady => "MSPR 2.0",
        DrmSystem::FairPlay => "FairPlay",
    }
}

/// An audio rendition's own AdaptationSet. DASH-IF IOP (v4.3 §3.9.4) keeps in one set only
/// Representations a player may switch between seamlessly, which two languages or a commentary
/// and the main track are not; with one Representation per rendition here, a set per rendition
/// is a set per language and role.
fn audio_adaptation(audio: &AudioTrack, id: String, package: &Package, target: u64) -> AdaptationSet {
    let role = match (audio.commentary, audio.describes_video, audio.default) {
        (true, _, _) => "commentary",
        (_, true, _) => "description",
        (_, _, true) => "main",
        _ => "alternate",
    };
    // DASH-IF IOP §3.9.4.4: an audio description is also signalled as serving the visually impaired.
    let accessibility = audio.describes_video.then(|| Accessibility {
        schemeIdUri: PURPOSE.into(),
        value: Some("1".into()),
        ..Default::default()
    });
    AdaptationSet {
        id: Some(id),
        contentType: Some("audio".into()),
        mimeType: Some("audio/mp4".into()),
        lang: Some(audio.language_tag()),
        segmentAlignment: Some(true),
        startWithSAP: Some(1),
        Accessibility: accessibility.into_iter().collect(),
        Role: vec![Role {
            schemeIdUri: ROLE.into(),
            value: Some(role.into()),
            ..Default::default()
        }],
        Label: vec![Label {
            content: audio.label.to_owned(),
            ..Default::default()
        }],
        ContentProtection: protection(package, true),
        representations: vec![Representation {
            id: Some(audio.name.to_owned()),
            bandwidth: Some(peak_bitrate(&audio.rendition.media.segments, target).round() as u64),
            codecs: Some(audio.rendition.codecs.clone()),
            audioSamplingRate: Some(audio.sample_rate.to_string()),
            AudioChannelConfiguration: vec![AudioChannelConfiguration {
                schemeIdUri: CHANNEL_CONFIGURATION.into(),
                value: Some(audio.channels.to_string()),
                ..Default::default()
            }],
            SegmentTemplate: Some(template(&audio.rendition.media, package)),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn video_adaptation(package: &Package, target: u64) -> AdaptationSet {
    let frame_rate = package.video[0].frame_rate;
    let frame_rate = if frame_rate.denominator() == 1 {
        frame_rate.numerator().to_string()
    } else {
        format!("{}/{}", frame_rate.numerator(), frame_rate.denominator())
    };
    let representations = package
        .video
        .iter()
        .map(|v| Representation {
            id: Some(v.name.to_owned()),
            bandwidth: Some(peak_bitrate(&v.rendition.media.segments, target).round() as u64),
            codecs: Some(v.rendition.codecs.clone()),
            width: Some(u64::from(v.width)),
            height: Some(u64::from(v.height)),
            sar: Some("1:1".into()),
            SegmentTemplate: Some(template(&v.rendition.media, package)),
            ..Default::default()
        })
        .collect();
    let (par_w, par_h) = package.display_aspect;
    AdaptationSet {
        id: Some("0".into()),
        contentType: Some("video".into()),
        ContentProtection: protection(package, false),
        mimeType: Some("video/mp4".into()),
        // Every rung's segments start at the same forced IDR.
        segmentAlignment: Some(true),
        startWithSAP: Some(1),
        maxWidth: package.video.iter().map(|v| u64::from(v.width)).max(),
        maxHeight: package.video.iter().map(|v| u64::from(v.height)).max(),
        frameRate: Some(frame_rate),
        par: Some(format!("{par_w}:{par_h}")),
        Accessibility: captions_accessibility(package).into_iter().collect(),
        representations,
        ..Default::default()
    }
}

/// CEA-608 captions on CC1 (SCTE 214-1 §6.7.2), when every rung carries them: 608 captions
/// state no language; the value says English, as the HLS rendition does.
fn captions_accessibility(package: &Package) -> Option<Accessibility> {
    package
        .video
        .iter()
        .all(|v| package.captions(v) == Some(true))
        .then(|| Accessibility {
            schemeIdUri: "urn:scte:dash:cc:cea-608:2015".into(),
            value: Some("CC1=eng".into()),
            ..Default::default()
        })
}

/// An AdaptationSet per subtitle rendition, numbered from `first_id`: its WebVTT segments
/// (`text/vtt` with a SegmentTemplate, the segmented form dash.js and Shaka Player both read),
/// the very files the HLS playlists list. Role `subtitle` or `forced-subtitle`; hearing impaired
/// as an Accessibility.
fn text_adaptations(package: &Package, first_id: usize, target: u64) -> Vec<AdaptationSet> {
    package
        .subtitles
        .iter()
        .enumerate()
        .map(|(index, subtitles)| {
            let track = &subtitles.track;
            let role = if track.forced { "forced-subtitle" } else { "subtitle" };
            AdaptationSet {
                id: Some((first_id + index).to_string()),
                contentType: Some("text".into()),
                mimeType: Some("text/vtt".into()),
                lang: language::well_formed(&track.language).map(str::to_owned),
                Label: vec![Label {
                    content: track.name.clone(),
                    ..Default::default()
                }],
                Role: vec![Role {
                    schemeIdUri: ROLE.into(),
                    value: Some(role.into()),
                    ..Default::default()
                }],
                Accessibility: track
                    .hearing_impaired
                    .then(|| Accessibility {
                        schemeIdUri: PURPOSE.into(),
                        value: Some("2".into()),
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                representations: vec![Representation {
                    id: Some(subtitles.name.clone()),
                    bandwidth: Some(peak_bitrate(&subtitles.media.segments, target).ceil() as u64),
                    SegmentTemplate: Some(text_template(&subtitles.media, package)),
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect()
}

/// The template of WebVTT segments. dash.js and Shaka Player take a segment's cue times as period
/// time, which is how they are written (`subtitles::webvtt`): so the timeline counts from the
/// period's start too, with no presentationTimeOffset (Shaka would take it off the cue times). A
/// live period that moved lists the segments cut again for it ([`MOVED_PERIOD_TEXT`]).
fn text_template(media: &SegmentedStream, package: &Package) -> SegmentTemplate {
    let start = period_start(media, package);
    let from_period: Vec<SegmentFacts> = media
        .segments
        .iter()
        .map(|segment| {
            let begins = (segment.start_ticks - start).max(0);
            SegmentFacts {
                start_ticks: begins,
                duration_ticks: segment.start_ticks + segment.duration_ticks - start - begins,
                ..segment.clone()
            }
        })
        .collect();
    let folder = match package.live.is_some_and(|live| live_period_start(live) > 0.0) {
        true => format!("{MOVED_PERIOD_TEXT}/"),
        false => String::new(),
    };
    SegmentTemplate {
        timescale: Some(u64::from(media.timescale)),
        media: Some(format!("$RepresentationID$/{folder}segment$Number%05d$.vtt")),
        startNumber: Some(start_number(package)),
        SegmentTimeline: Some(timeline(&from_period)),
        ..Default::default()
    }
}

/// Seconds from the start of the period to the end of the rendition's last segment.
fn presentation_end(media: &SegmentedStream, package: &Package) -> f64 {
    media.segments.last().map_or(0.0, |last| {
        (last.start_ticks + last.duration_ticks - period_start(media, package)) as f64 / f64::from(media.timescale)
    })
}

/// Seconds from the source's start to the period's start, one instant for every representation.
/// Live, see [`live_period_start`]. Otherwise where the stream that starts last starts: when a
/// copied source's audio begins before its video, the period begins with the video, so no
/// representation opens with a gap, and the audio's first moments fall before the period, where
/// players drop them.
fn period_seconds(package: &Package) -> f64 {
    match package.live {
        Some(live) => live_period_start(live),
        None => latest_start(package.renditions().map(|(_, r)| &r.media)),
    }
}

/// Seconds from the source's start to a live period's start, from which live subtitle segments
/// count their cue times: the source's start while it runs; once a live window has ended, where
/// the first segment still listed starts (the ones before it are gone).
pub fn live_period_start(live: &LiveState) -> f64 {
    match live.ended {
        true => live.listed_from,
        false => 0.0,
    }
}

/// Seconds from the source's start to where the stream that starts last starts: a VOD period's
/// start, from which subtitle segments count their cue times.
pub fn latest_start<'a>(streams: impl Iterator<Item = &'a SegmentedStream>) -> f64 {
    streams
        .filter_map(|media| {
            let first = media.segments.first()?;
            Some((first.start_ticks - media.presentation_offset) as f64 / f64::from(media.timescale))
        })
        .fold(0.0, f64::max)
}

/// The media time at which the period starts, in this stream's ticks.
fn period_start(media: &SegmentedStream, package: &Package) -> i64 {
    media.presentation_offset + (period_seconds(package) * f64::from(media.timescale)).round() as i64
}

/// The number of the first segment listed: a live window's first, else 0.
fn start_number(package: &Package) -> u64 {
    package.live.map_or(0, |l| l.first as u64)
}

fn template(media: &SegmentedStream, package: &Package) -> SegmentTemplate {
    SegmentTemplate {
        timescale: Some(u64::from(media.timescale)),
        presentationTimeOffset: Some(period_start(media, package).max(0) as u64),
        initialization: Some(format!("$RepresentationID$/{INIT_SEGMENT}")),
        media: Some("$RepresentationID$/segment$Number%05d$.m4s".into()),
        startNumber: Some(start_number(package)),
        SegmentTimeline: Some(timeline(&media.segments)),
        ..Default::default()
    }
}

/// S elements: runs of equal durations as one S with @r; @t where the run does not follow on.
fn timeline(segments: &[SegmentFacts]) -> SegmentTimeline {
    let mut runs: Vec<S> = Vec::new();
    let mut next_start: Option<i64> = None;
    for segment in segments {
        let follows = next_start == Some(segment.start_ticks);
        let duration = segment.duration_ticks.max(0) as u64;
        match runs.last_mut() {
            Some(run) if follows && run.d == duration => run.r = Some(run.r.unwrap_or(0) + 1),
            _ => runs.push(S {
                t: (!follows).then_some(segment.start_ticks.max(0) as u64),
                d: duration,
                ..Default::default()
            }),
        }
        next_start = Some(segment.start_ticks + segment.duration_ticks);
    }
    SegmentTimeline { segments: runs }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start_ticks: i64, duration_ticks: i64) -> SegmentFacts {
        SegmentFacts {
            start_ticks,
            duration_ticks,
            ..SegmentFacts::default()
        }
    }

    #[test]
    fn equal_durations_collapse_into_repeats_with_one_start_time() {
        let segs = [segment(100, 50), segment(150, 50), segment(200, 50), segment(250, 20)];
        let runs = timeline(&segs).segments;
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].t, runs[0].d, runs[0].r), (Some(100), 50, Some(2)));
        assert_eq!((runs[1].t, runs[1].d, runs[1].r), (None, 20, None));
    }

    #[test]
    fn a_gap_restates_the_start_time() {
        let segs = [segment(0, 10), segment(15, 10)];
        let runs = timeline(&segs).segments;
        assert_eq!((runs[1].t, runs[1].d), (Some(15), 10));
    }
}
