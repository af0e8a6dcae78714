//! Subtitle renditions: text tracks from sidecar files (and the source's text streams) read into
//! cues, then written as WebVTT cut at the video's segment boundaries.

pub mod source;
pub mod webvtt;

use std::path::{Path, PathBuf};

pub use stream_pack_formats::subtitles::Cue;
use stream_pack_formats::subtitles::{self as cues, Syntax};

use crate::error::{Error, Result};
use crate::package::language;
use crate::package::segment::{Completed, SegmentedStream};

/// The largest sidecar read: a feature film's subtitles take a few hundred KiB.
const SIDECAR_LIMIT: u64 = 16 << 20;

/// A subtitle file given beside the input: `PATH[:LANG[:NAME]]` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtitleSidecar {
    /// A `.srt`, `.vtt`, `.ass` or `.ssa` file, UTF-8 or UTF-16 with its byte-order mark.
    pub path: PathBuf,
    /// A BCP 47 language tag; `None` is `und`.
    pub language: Option<String>,
    /// What players show; `None` names it by its language.
    pub name: Option<String>,
}

impl SubtitleSidecar {
    /// `PATH[:LANG[:NAME]]`: the path up to the first `:`, the name may hold more.
    pub fn parse(spec: &str) -> SubtitleSidecar {
        let mut parts = spec.splitn(3, ':');
        let path = PathBuf::from(parts.next().unwrap_or_default());
        let language = parts.next().filter(|l| !l.is_empty()).map(str::to_owned);
        let name = parts.next().filter(|n| !n.is_empty()).map(str::to_owned);
        SubtitleSidecar { path, language, name }
    }
}

/// One subtitle rendition's cues and how players are told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextTrack {
    /// A BCP 47 tag (`und` when unknown).
    pub language: String,
    pub name: String,
    /// Shown when the viewer chose no subtitles (signs, foreign dialogue).
    pub forced: bool,
    /// Subtitles for the deaf and hard of hearing: they describe sounds and music too.
    pub hearing_impaired: bool,
    /// In order of their start, times from the source's start.
    pub cues: Vec<Cue>,
}

/// Checks every sidecar's language, then reads each: all of them before anything is written. A
/// file read as Windows-1252 (it is not UTF-8) gets a note in `notes`.
pub fn load_sidecars(sidecars: &[SubtitleSidecar], notes: &mut Vec<String>) -> Result<Vec<TextTrack>> {
    for sidecar in sidecars {
        sidecar_syntax(sidecar)?;
        if let Some(language) = sidecar
            .language
            .as_deref()
            .filter(|l| language::well_formed(l).is_none())
        {
            return Err(Error::InvalidOption {
                option: "subtitles",
                reason: format!(
                    "{}:{language}: {language:?} is not a language tag (BCP 47: en, ja, pt-BR)",
                    sidecar.path.display()
                ),
            });
        }
    }
    sidecars.iter().map(|sidecar| load_sidecar(sidecar, notes)).collect()
}

/// Checks text tracks built in code as sidecars are checked: a language tag, a name players can
/// list, cues a WebVTT file can hold in order of time.
pub fn check_tracks(tracks: &[TextTrack]) -> Result<()> {
    for track in tracks {
        let refused = |reason: String| Error::InvalidOption {
            option: "text_tracks",
            reason: format!("{:?}: {reason}", track.name),
        };
        if language::well_formed(&track.language).is_none() {
            return Err(refused(format!(
                "{:?} is not a language tag (BCP 47: en, ja, pt-BR, or und)",
                track.language
            )));
        }
        if track.name.trim().is_empty() {
            return Err(refused("a track needs a name".into()));
        }
        cues::check(&track.cues).map_err(|(number, reason)| refused(format!("cue {number}: {reason}")))?;
    }
    Ok(())
}

fn sidecar_syntax(sidecar: &SubtitleSidecar) -> Result<Syntax> {
    let extension = sidecar
        .path
        .extension()
        .map(|e| e.to_string_lossy())
        .unwrap_or_default();
    Syntax::from_extension(&extension).ok_or_else(|| Error::InvalidOption {
        option: "subtitles",
        reason: format!("{}: not a .srt, .vtt, .ass or .ssa file", sidecar.path.display()),
    })
}

fn load_sidecar(sidecar: &SubtitleSidecar, notes: &mut Vec<String>) -> Result<TextTrack> {
    let path = &sidecar.path;
    let bad = |reason: String| Error::SubtitleFile {
        path: path.clone(),
        reason,
    };
    let bytes = crate::input::sidefile::read(path, SIDECAR_LIMIT).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => bad("no such file".into()),
        _ => bad(e.to_string()),
    })?;
    let (text, encoding) = cues::decode(&bytes).map_err(|reason| bad(reason.into()))?;
    if encoding == cues::Encoding::Windows1252 {
        notes.push(format!(
            "subtitles file {}: not UTF-8, read as Windows-1252 (Latin-1); if its accents look wrong, convert it to UTF-8",
            path.display()
        ));
    }
    let cues = cues::parse(&text, sidecar_syntax(sidecar)?).map_err(|e| bad(e.to_string()))?;
    let language = sidecar.language.clone().unwrap_or_else(|| "und".into());
    Ok(TextTrack {
        name: sidecar.name.clone().unwrap_or_else(|| default_name(&language, path)),
        language,
        forced: false,
        hearing_impaired: false,
        cues,
    })
}

/// A sidecar without a name is named as the source's streams are: by its language's English name,
/// else by the tag, else (no language) by its file.
fn default_name(language: &str, path: &Path) -> String {
    match language {
        "und" => path
            .file_stem()
            .map_or_else(|| "Subtitles".into(), |s| s.to_string_lossy().into_owned()),
        tag => language::english_name(tag).map_or_else(|| tag.to_owned(), str::to_owned),
    }
}

/// A subtitle rendition as written: its folder inside the package, its track and its segments,
/// which HLS and DASH share.
#[derive(Debug, Clone)]
pub struct TextRendition {
    pub name: String,
    pub track: TextTrack,
    pub media: SegmentedStream,
}

impl TextRendition {
    /// Its files, for the publisher: each segment, in order.
    pub fn completed(&self, root: &Path) -> impl Iterator<Item = Completed> + '_ {
        let dir = root.join(&self.name);
        self.media.segments.iter().map(move |segment| Completed {
            rendition: self.name.clone(),
            path: dir.join(&segment.uri),
            segment: Some(segment.clone()),
            codecs: Some(WEBVTT_CODEC.to_owned()),
            stream: SegmentedStream {
                segments: Vec::new(),
                ..self.media.clone()
            },
        })
    }
}

/// WebVTT's RFC 6381 name.
const WEBVTT_CODEC: &str = "wvtt";

/// Each track's folder, named by its language: `subtitles-en`, `subtitles-en-2`.
pub fn folder_names(tracks: &[TextTrack]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(tracks.len());
    for track in tracks {
        let base = format!("subtitles-{}", track.language);
        let name = (1..)
            .map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") })
            .find(|candidate| !names.contains(candidate))
            .expect("some number is free");
        names.push(name);
    }
    names
}

/// Writes every track into `root`, in a folder of its own ([`folder_names`]), cut like
/// `timeline`, its cue times counted from `origin_ms` after the source's start: where a DASH
/// period starts.
pub fn write_renditions(
    root: &Path,
    tracks: Vec<TextTrack>,
    timeline: &SegmentedStream,
    origin_ms: u64,
) -> Result<Vec<TextRendition>> {
    let mut renditions: Vec<TextRendition> = Vec::with_capacity(tracks.len());
    let names = folder_names(&tracks);
    for (track, name) in tracks.into_iter().zip(names) {
        let media = webvtt::write_segments(&root.join(&name), &track, timeline, origin_ms)?;
        renditions.push(TextRendition { name, track, media });
    }
    Ok(renditions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_spec_names_path_language_and_name() {
        assert_eq!(
            SubtitleSidecar::parse("subs/ja.srt:ja:日本語: 字幕"),
            SubtitleSidecar {
                path: "subs/ja.srt".into(),
                language: Some("ja".into()),
                name: Some("日本語: 字幕".into()),
            }
        );
        assert_eq!(SubtitleSidecar::parse("a.vtt").language, None);
        assert_eq!(SubtitleSidecar::parse("a.vtt::Named").name.as_deref(), Some("Named"));
    }

    #[test]
    fn sidecars_are_checked_before_any_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("en.srt");
        std::fs::write(&good, "1\n00:00:01,000 --> 00:00:02,000\nHi\n").unwrap();
        let sidecar = |path: &Path, language: Option<&str>| SubtitleSidecar {
            path: path.to_owned(),
            language: language.map(str::to_owned),
            name: None,
        };
        let tracks = load_sidecars(&[sidecar(&good, Some("en"))], &mut Vec::new()).unwrap();
        assert_eq!((tracks[0].name.as_str(), tracks[0].cues.len()), ("English", 1));
        let missing = dir.path().join("missing.srt");
        let bad_language = load_sidecars(
            &[sidecar(&missing, None), sidecar(&good, Some("en\"x"))],
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(bad_language.exit_code(), crate::error::exit::USAGE, "{bad_language}");
        let missing = load_sidecars(&[sidecar(&missing, None)], &mut Vec::new()).unwrap_err();
        assert_eq!(missing.exit_code(), crate::error::exit::INPUT);
        assert!(missing.to_string().ends_with("missing.srt: no such file"), "{missing}");
    }
}
