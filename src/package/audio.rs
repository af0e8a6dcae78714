//! Which of the source's audio streams become renditions, and what each is called: its folder,
//! the NAME players list, and which one players start with.

use crate::error::{Error, Result};
use crate::input::source::{AudioInput, Source};
use crate::package::language;

/// The folder of a package's only audio rendition.
pub(super) const AUDIO_DIR: &str = "audio";

/// The source's audio streams a package keeps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioSelection {
    /// Every audio stream, each its own rendition.
    #[default]
    All,
    /// No audio: a video-only package.
    None,
    /// These, in this order: each names one stream or every stream in a language.
    Streams(Vec<AudioPick>),
}

/// What a multichannel source stream (6 channels or more) gives besides its stereo downmix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Surround {
    /// A 5.1 rendition too, in the audio codec chosen.
    #[default]
    Aac,
    /// The stereo downmix alone.
    None,
}

impl Surround {
    /// `aac` or `none`.
    pub fn parse(text: &str) -> std::result::Result<Surround, String> {
        match text {
            "aac" => Ok(Surround::Aac),
            "none" => Ok(Surround::None),
            _ => Err(format!("{text:?}: expected aac or none")),
        }
    }
}

/// One item of an audio selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioPick {
    /// The stream with this index in the container, as `probe` numbers them.
    Index(usize),
    /// Every stream in this language (`en`, or the container's own `eng`).
    Language(String),
}

impl AudioSelection {
    /// `all`, `none`, or a comma-separated list of stream indexes and languages: `0,2`, `en,ja`.
    pub fn parse(text: &str) -> std::result::Result<AudioSelection, String> {
        match text {
            "all" => return Ok(AudioSelection::All),
            "none" => return Ok(AudioSelection::None),
            _ => {}
        }
        let pick = |item: &str| match item.parse::<usize>() {
            Ok(index) => Ok(AudioPick::Index(index)),
            Err(_) if language::bcp47(Some(item)) != language::UNDETERMINED => Ok(AudioPick::Language(item.to_owned())),
            Err(_) => Err(format!("{item:?} is neither a stream index nor a language")),
        };
        text.split(',')
            .map(|item| pick(item.trim()))
            .collect::<std::result::Result<_, _>>()
            .map(AudioSelection::Streams)
    }
}

/// An audio stream chosen for the package, and how the package names it.
#[derive(Debug, Clone)]
pub(super) struct AudioRendition {
    pub input: AudioInput,
    /// Its folder in the package, also the DASH Representation id.
    pub dir: String,
    /// The NAME players list: the stream's title, else its language's English name; unique.
    pub label: String,
    /// The rendition players start with: exactly one stereo rendition in a package is, and
    /// the 5.1 one of the same stream.
    pub default: bool,
    /// The 5.1 rendition of a multichannel stream, beside its stereo downmix.
    pub surround: bool,
}

/// The channel count from which a source stream also gives a 5.1 rendition.
const SURROUND_CHANNELS: u16 = 6;

/// The renditions, each multichannel stream's followed by a 5.1 one when `encoded` says the
/// stream is encoded (a copied stream keeps its channels already), unless `surround` is `None`.
/// It shares its stereo sibling's NAME, as Apple's HLS authoring spec wants of one content in
/// two groups.
pub(super) fn with_surround(
    renditions: Vec<AudioRendition>,
    surround: Surround,
    encoded: impl Fn(&AudioInput) -> bool,
) -> Vec<AudioRendition> {
    let wide = |r: &AudioRendition| {
        (surround == Surround::Aac && r.input.channels >= SURROUND_CHANNELS && encoded(&r.input)).then(|| {
            AudioRendition {
                dir: format!("{}-5.1", r.dir),
                surround: true,
                ..r.clone()
            }
        })
    };
    renditions
        .into_iter()
        .flat_map(|r| {
            let surround = wide(&r);
            std::iter::once(r).chain(surround)
        })
        .collect()
}

/// The renditions `selection` keeps of the source's audio streams, the one in `default_language`
/// (else the source's default-disposition stream, else the first) the default. A selection or a
/// default naming a stream that is not there is refused.
pub(super) fn choose(
    source: &Source,
    selection: &AudioSelection,
    default_language: Option<&str>,
) -> Result<Vec<AudioRendition>> {
    let inputs = selected(&source.audio_streams, selection)?;
    let default = match default_language {
        Some(wanted) => Some(
            inputs
                .iter()
                .position(|input| same_language(input, wanted))
                .ok_or_else(|| invalid("default_audio", format!("{wanted}: {}", no_such_stream(&inputs))))?,
        ),
        None => inputs.iter().position(|input| input.disposition.default).or(Some(0)),
    };
    let languages: Vec<String> = inputs
        .iter()
        .map(|input| language::bcp47(input.language.as_deref()))
        .collect();
    let dirs = match inputs.len() {
        1 => vec![AUDIO_DIR.to_owned()],
        _ => unique(languages.iter().map(|l| format!("{AUDIO_DIR}-{l}")), "-"),
    };
    let labels = inputs.iter().zip(&languages).map(|(input, language)| {
        let name = input.title.clone().filter(|t| !t.trim().is_empty());
        name.unwrap_or_else(|| language::english_name(language).unwrap_or("Audio").to_owned())
    });
    let labels = unique(labels, " ");
    Ok(inputs
        .into_iter()
        .zip(dirs.into_iter().zip(labels))
        .enumerate()
        .map(|(i, (input, (dir, label)))| AudioRendition {
            input,
            dir,
            label,
            default: Some(i) == default,
            surround: false,
        })
        .collect())
}

/// The streams the selection names, in its order, each once.
fn selected(streams: &[AudioInput], selection: &AudioSelection) -> Result<Vec<AudioInput>> {
    let picks = match selection {
        AudioSelection::All => return Ok(streams.to_vec()),
        AudioSelection::None => return Ok(Vec::new()),
        AudioSelection::Streams(picks) => picks,
    };
    let mut chosen: Vec<AudioInput> = Vec::new();
    for pick in picks {
        let matching: Vec<&AudioInput> = streams
            .iter()
            .filter(|input| match pick {
                AudioPick::Index(index) => input.index == *index,
                AudioPick::Language(wanted) => same_language(input, wanted),
            })
            .collect();
        if matching.is_empty() {
            let named = match pick {
                AudioPick::Index(index) => index.to_string(),
                AudioPick::Language(wanted) => wanted.clone(),
            };
            return Err(invalid("audio", format!("{named}: {}", no_such_stream(streams))));
        }
        for input in matching {
            if chosen.iter().all(|c| c.index != input.index) {
                chosen.push(input.clone());
            }
        }
    }
    Ok(chosen)
}

/// Whether the stream is in the language `wanted` names, whichever code either uses.
fn same_language(input: &AudioInput, wanted: &str) -> bool {
    language::bcp47(input.language.as_deref()) == language::bcp47(Some(wanted))
}

/// Says that no stream matched, and which streams there are.
fn no_such_stream(streams: &[AudioInput]) -> String {
    let listed: Vec<String> = streams
        .iter()
        .map(|s| format!("#{} {}", s.index, language::bcp47(s.language.as_deref())))
        .collect();
    match listed.is_empty() {
        true => "the source has no audio stream".to_owned(),
        false => format!("no such audio stream (the source's: {})", listed.join(", ")),
    }
}

fn invalid(option: &'static str, reason: String) -> Error {
    Error::InvalidOption { option, reason }
}

/// The names, each repeated one numbered from 2 after `separator` (`English 2`, `audio-en-2`).
fn unique(names: impl Iterator<Item = String>, separator: &str) -> Vec<String> {
    let mut taken: Vec<String> = Vec::new();
    for name in names {
        let free = (1..)
            .map(|n| match n {
                1 => name.clone(),
                n => format!("{name}{separator}{n}"),
            })
            .find(|candidate| !taken.contains(candidate))
            .expect("some number is free");
        taken.push(free);
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_parse_indexes_and_languages() {
        assert_eq!(AudioSelection::parse("all"), Ok(AudioSelection::All));
        assert_eq!(AudioSelection::parse("none"), Ok(AudioSelection::None));
        assert_eq!(
            AudioSelection::parse("en, 2,jpn"),
            Ok(AudioSelection::Streams(vec![
                AudioPick::Language("en".into()),
                AudioPick::Index(2),
                AudioPick::Language("jpn".into()),
            ]))
        );
        assert!(AudioSelection::parse("en,").is_err());
        assert!(AudioSelection::parse("e\"n").is_err());
    }

    #[test]
    fn repeated_names_are_numbered() {
        let names = ["English", "Japanese", "English", "English"].map(String::from);
        assert_eq!(
            unique(names.into_iter(), " "),
            ["English", "Japanese", "English 2", "English 3"]
        );
    }
}
