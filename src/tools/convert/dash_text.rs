//! The text AdaptationSets of a DASH MPD (the first Period's): WebVTT segments a SegmentTemplate
//! names, or one whole file a BaseURL names, their cue times period time. libav's DASH demuxer
//! refuses an MPD on disk that lists WebVTT segments, so it is given a copy without the text sets.

use dash_mpd_core::{AdaptationSet, MPD, Period, SegmentTemplate, SubtitleType};
use tempfile::TempDir;

use super::pieces::{Place, Reader};
use super::text::{self, Described, Found, Outcome, PIECE_LIMIT, Unreadable};
use crate::error::{Error, Result};

/// The Accessibility scheme whose value 2 marks subtitles for the hard of hearing.
const AUDIO_PURPOSE: &str = "urn:tva:metadata:cs:AudioPurposeCS:2007";

/// An MPD read by `convert`: its text sets, and the copy of it libav reads when it has any.
pub struct Manifest {
    place: Place,
    mpd: MPD,
    /// The copy without text sets, in a folder of its own removed when this is dropped.
    pub without_text: Option<(TempDir, std::path::PathBuf)>,
}

impl Manifest {
    /// Reads the MPD at `place`; `None` when it is no MPD this reads (libav then says why).
    pub fn read(reader: &Reader, place: &Place) -> Result<Option<Manifest>> {
        if let Place::File(path) = place {
            // A missing or empty file is refused as libav's open would refuse it.
            crate::input::watchdog::check_file(path)?;
        }
        let bytes = reader.read(place, PIECE_LIMIT)?;
        let Ok(text) = String::from_utf8(bytes) else {
            return Ok(None);
        };
        let Ok(mpd) = dash_mpd_core::parse(&text) else {
            return Ok(None);
        };
        let has_text = first_period(&mpd).is_some_and(|p| p.adaptations.iter().any(|set| is_text(&set)));
        // Over HTTP the demuxer reads a text set, but then stops all streams when its cues end.
        let without_text = match has_text {
            true => Some(write_without_text(&text, place)?),
            false => None,
        };
        Ok(Some(Manifest {
            place: place.clone(),
            mpd,
            without_text,
        }))
    }

    /// Every text set of the first Period, its cue times counted from `start_ms` on the media's
    /// clock (period time 0 is the main set's presentationTimeOffset there).
    pub fn subtitles(&self, reader: &Reader, start_ms: i64) -> Result<Found> {
        let mut found = Found::default();
        let Some(period) = first_period(&self.mpd) else {
            return Ok(found);
        };
        let shift = main_offset_ms(period) - start_ms;
        let base = self.base(period);
        for set in period.adaptations.iter().filter(is_text) {
            let described = described(set);
            match text_set(reader, &base, set, &described, shift)? {
                Ok(cues) => found.tracks.push(described.track(cues, &mut found.notes)),
                Err(Unreadable(why)) => found.notes.push(format!("{} was left out: {why}", described.label())),
            }
        }
        Ok(found)
    }

    pub fn mpd(&self) -> &MPD {
        &self.mpd
    }

    /// Whether the MPD is on the web.
    pub fn on_web(&self) -> bool {
        matches!(self.place, Place::Web(_))
    }

    /// Where the Period's URLs resolve: the MPD's place, then its and the Period's BaseURLs.
    fn base(&self, period: &Period) -> Place {
        let urls = self.mpd.base_url.iter().chain(&period.BaseURL).map(|b| b.base.trim());
        urls.fold(self.place.clone(), |place, url| place.join(url).unwrap_or(place))
    }
}

fn first_period(mpd: &MPD) -> Option<&Period> {
    mpd.periods.first()
}

fn is_text(set: &&AdaptationSet) -> bool {
    dash_mpd_core::is_subtitle_adaptation(set)
}

/// The MPD's text, each text AdaptationSet cut out and a BaseURL naming the original's folder put
/// first, so libav reads the media where the original names it; written in a new folder.
fn write_without_text(text: &str, place: &Place) -> Result<(TempDir, std::path::PathBuf)> {
    let corrupt = |reason: String| Error::InputCorrupt {
        path: place.to_string().into(),
        reason,
    };
    let document = roxmltree::Document::parse(text).map_err(|e| corrupt(e.to_string()))?;
    if let Place::Web(_) = place {
        only_web_urls(&document, place).map_err(corrupt)?;
    }
    let root = document.root_element();
    let mut cut: Vec<std::ops::Range<usize>> = document
        .descendants()
        .filter(|node| node.has_tag_name("AdaptationSet") && text_node(*node))
        .map(|node| node.range())
        .collect();
    let base = root.children().find(|n| n.has_tag_name("BaseURL"));
    let folder = place
        .join(base.and_then(|b| b.text()).map_or("./", str::trim))
        .map_err(corrupt)?;
    cut.extend(base.map(|b| b.range()));
    cut.sort_by_key(|range| range.start);
    let folder = match folder {
        // Without its `.` components: libav joins segment names to it as text.
        Place::File(path) => format!("{}/", path.components().collect::<std::path::PathBuf>().display()),
        Place::Web(url) => url.to_string(),
    };
    // Right after the MPD's start tag, before any of the cuts (all inside it).
    let inside = root.first_child().map_or(root.range().end, |child| child.range().start);
    let mut copy = text[..inside].to_owned();
    copy.push_str(&format!(
        "<BaseURL>{}</BaseURL>",
        folder.replace('&', "&amp;").replace('<', "&lt;")
    ));
    let mut at = inside;
    for range in cut {
        copy.push_str(&text[at..range.start]);
        at = range.end;
    }
    copy.push_str(&text[at..]);
    let dir = tempfile::Builder::new()
        .prefix(".stream-pack-convert-")
        .tempdir()
        .map_err(Error::io(std::env::temp_dir()))?;
    let path = dir.path().join("manifest.mpd");
    std::fs::write(&path, copy).map_err(Error::io(&path))?;
    Ok((dir, path))
}

/// The attributes of an MPD that name a resource to read.
const URL_ATTRIBUTES: [&str; 5] = ["media", "initialization", "sourceURL", "index", "href"];

/// Refuses an MPD on the web that names anything but web resources: libav reads the copy from a
/// file, so it may open files, and a hostile MPD's `file:` URLs would read this machine's.
fn only_web_urls(document: &roxmltree::Document, place: &Place) -> std::result::Result<(), String> {
    let base_urls = document
        .descendants()
        .filter(|node| node.has_tag_name("BaseURL"))
        .filter_map(|node| node.text());
    let attributes = document.descendants().flat_map(|node| {
        node.attributes()
            .filter(|a| URL_ATTRIBUTES.contains(&a.name()))
            .map(|a| a.value())
    });
    base_urls
        .chain(attributes)
        .try_for_each(|url| place.join(url.trim()).map(drop))
}

/// Whether an AdaptationSet element is text, as `dash_mpd_core::is_subtitle_adaptation` tells.
fn text_node(node: roxmltree::Node) -> bool {
    let subtitle_mime = |m: &str| m.starts_with("text/") || m == "application/ttml+xml" || m == "application/x-sami";
    let subtitle_codec = |c: &str| matches!(c, "wvtt" | "c608" | "tx3g" | "stpp") || c.starts_with("stpp.");
    let own = |n: roxmltree::Node| {
        n.attribute("mimeType").is_some_and(subtitle_mime) || n.attribute("codecs").is_some_and(subtitle_codec)
    };
    own(node)
        || node.attribute("contentType") == Some("text")
        || node.children().any(|child| match child.tag_name().name() {
            "Representation" => own(child),
            "ContentComponent" => child.attribute("contentType") == Some("text"),
            "Role" => child.attribute("value") == Some("subtitle"),
            _ => false,
        })
}

fn described(set: &AdaptationSet) -> Described {
    let role = |value: &str| set.Role.iter().any(|r| r.value.as_deref() == Some(value));
    Described {
        name: set.Label.first().map(|label| label.content.clone()),
        language: set.lang.clone(),
        forced: role("forced-subtitle"),
        hearing_impaired: role("caption")
            || set
                .Accessibility
                .iter()
                .any(|a| a.schemeIdUri == AUDIO_PURPOSE && a.value.as_deref() == Some("2")),
    }
}

/// The presentationTimeOffset of the first video (else audio) Representation, in milliseconds:
/// the media time libav reads at period time 0.
fn main_offset_ms(period: &Period) -> i64 {
    let main = period
        .adaptations
        .iter()
        .filter(|set| !is_text(set))
        .min_by_key(|set| !dash_mpd_core::is_video_adaptation(set));
    let template = main.and_then(|set| {
        let representation = set.representations.first();
        representation
            .and_then(|r| r.SegmentTemplate.as_ref())
            .or(set.SegmentTemplate.as_ref())
    });
    template.map_or(0, |t| {
        let offset = t.presentationTimeOffset.unwrap_or(0) as i128 * 1000;
        (offset / i128::from(t.timescale.unwrap_or(1).max(1))) as i64
    })
}

/// The cues of a text set's first Representation.
fn text_set(reader: &Reader, base: &Place, set: &AdaptationSet, described: &Described, shift: i64) -> Outcome {
    if dash_mpd_core::subtitle_type(&set) != SubtitleType::Vtt {
        return Ok(Err(Unreadable(
            "its subtitles are not WebVTT files (IMSC/TTML, or in fMP4)".into(),
        )));
    }
    let Some(representation) = set.representations.first() else {
        return Ok(Err(Unreadable("it has no Representation".into())));
    };
    let urls = set.BaseURL.iter().chain(&representation.BaseURL).map(|b| b.base.trim());
    let base = urls
        .map(str::to_owned)
        .try_fold(base.clone(), |place, url| place.join(&url))
        .map_err(|reason| text::corrupt(reader, described, reason))?;
    let template = representation.SegmentTemplate.as_ref().or(set.SegmentTemplate.as_ref());
    let names = match template {
        Some(template) => match segment_names(template, representation.id.as_deref().unwrap_or_default()) {
            Ok(names) => names,
            Err(why) => return Ok(Err(why)),
        },
        None if !representation.BaseURL.is_empty() || !set.BaseURL.is_empty() => vec![String::new()],
        None => {
            return Ok(Err(Unreadable(
                "it names no segments (SegmentList and SegmentBase are not read)".into(),
            )));
        }
    };
    let places = names
        .iter()
        .map(|name| {
            if name.is_empty() {
                Ok(base.clone())
            } else {
                base.join(name)
            }
        })
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(|reason| text::corrupt(reader, described, reason))?;
    text::read_segments(reader, &places, described, |_| shift)
}

/// The file names a SegmentTemplate with a SegmentTimeline gives, in order.
fn segment_names(template: &SegmentTemplate, id: &str) -> std::result::Result<Vec<String>, Unreadable> {
    let media = template
        .media
        .as_deref()
        .ok_or_else(|| Unreadable("its SegmentTemplate has no @media".into()))?;
    let timeline = template
        .SegmentTimeline
        .as_ref()
        .ok_or_else(|| Unreadable("its SegmentTemplate has no SegmentTimeline".into()))?;
    let mut names = Vec::new();
    let mut number = template.startNumber.unwrap_or(1);
    let mut time = 0;
    for s in &timeline.segments {
        time = s.t.unwrap_or(time);
        let repeats = u64::try_from(s.r.unwrap_or(0))
            .map_err(|_| Unreadable("its SegmentTimeline repeats without end".into()))?;
        for _ in 0..=repeats {
            if names.len() >= text::SEGMENT_LIMIT {
                return Err(Unreadable(format!(
                    "it lists more than {} segments",
                    text::SEGMENT_LIMIT
                )));
            }
            names.push(expand(media, id, number, time));
            number += 1;
            time += s.d;
        }
    }
    Ok(names)
}

/// A SegmentTemplate's `media` for one segment: `$RepresentationID$`, `$Number$` and `$Time$`
/// (with a `%0Nd` width), `$$`.
fn expand(media: &str, id: &str, number: u64, time: u64) -> String {
    let mut out = String::new();
    let mut parts = media.split('$');
    out.push_str(parts.next().unwrap_or_default());
    let mut inside = true;
    for part in parts {
        if inside {
            let (name, width) = part.split_once("%0").unwrap_or((part, ""));
            let width: usize = width.trim_end_matches('d').parse().unwrap_or(0);
            match name {
                "" => out.push('$'),
                "RepresentationID" => out.push_str(id),
                "Number" => out.push_str(&format!("{number:0width$}")),
                "Time" => out.push_str(&format!("{time:0width$}")),
                other => out.push_str(other),
            }
        } else {
            out.push_str(part);
        }
        inside = !inside;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_names_expand() {
        assert_eq!(
            expand("$RepresentationID$/segment$Number%05d$.vtt", "subs", 3, 0),
            "subs/segment00003.vtt"
        );
        assert_eq!(expand("t$Time$-$$.vtt", "x", 1, 9000), "t9000-$.vtt");
    }
}
