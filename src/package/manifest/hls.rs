//! HLS playlists (RFC 8216) written from the measured facts of the segments.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, ClosedCaptionGroupId, ExtTag, InstreamId, Key, KeyMethod, Map,
    MasterPlaylist, MediaPlaylist, MediaPlaylistType, MediaSegment, QuotedOrUnquoted, Resolution, VariantStream,
};

use super::{
    AudioTrack, LiveState, Package, VideoTrack, WrittenManifest, attr, average_bitrate, millis, peak_bitrate, write,
};
use crate::error::Result;
use crate::package::crypto::{CommonKey, CommonScheme, DrmSystem, KeyPeriod};
use crate::package::language;
use crate::package::segment::SegmentedStream;
use crate::package::subtitles::TextRendition;

/// Decimal EXTINF needs version 3; EXT-X-MAP without I-frames-only needs 6 (RFC 8216 §7).
const PLAYLIST_VERSION: usize = 3;
const PLAYLIST_VERSION_WITH_MAP: usize = 6;
const AUDIO_GROUP: &str = "audio";
const SUBTITLES_GROUP: &str = "subs";
const CAPTIONS_GROUP: &str = "cc";
/// What HLS calls subtitles for the deaf and hard of hearing (Apple's HLS authoring spec).
const SDH_CHARACTERISTICS: &str =
    "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound";
const MEDIA_PLAYLIST: &str = "index.m3u8";
const FAIRPLAY_KEY_FORMAT: &str = "com.apple.streamingkeydelivery";
pub const MASTER_PLAYLIST: &str = "master.m3u8";

/// Writes every media playlist, then `master.m3u8` that names them, into `root`.
pub fn write_package(root: &Path, package: &Package) -> Result<Vec<WrittenManifest>> {
    let target = package.target_duration();
    let mut written = Vec::new();
    for (index, (name, rendition)) in package.renditions().enumerate() {
        let keys = package.keys.map(|periods| (periods, package.output));
        let mut playlist = media_playlist(&rendition.media, target, keys, package.live);
        if package.sample_aes {
            encrypt_samples(&mut playlist, package.fairplay_uri);
        }
        if let Some(common) = package.protection {
            protect(&mut playlist, common, index >= package.video.len());
        }
        written.push(write(root, format!("{name}/{MEDIA_PLAYLIST}"), |w| {
            playlist.write_to(w)
        })?);
    }
    for subtitles in package.subtitles {
        let playlist = media_playlist(&subtitles.media, target, None, package.live);
        written.push(write(root, format!("{}/{MEDIA_PLAYLIST}", subtitles.name), |w| {
            playlist.write_to(w)
        })?);
    }
    let mut master = master_playlist(package, target);
    if let Some(common) = package.protection {
        master.unknown_tags.extend(session_keys(common));
        // KEYFORMAT and KEYFORMATVERSIONS need version 5 (RFC 8216 §7).
        master.version = master.version.max(Some(5));
    }
    written.push(write(root, MASTER_PLAYLIST.into(), |w| master.write_to(w))?);
    Ok(written)
}

/// Signals the common encryption of a media playlist's samples: an EXT-X-KEY per DRM system
/// before the first segment, ahead of its EXT-X-MAP (m3u8-rs writes the map first, so the map
/// moves after the keys). `audio`: the playlist's track is audio, with the audio tracks' key.
fn protect(playlist: &mut MediaPlaylist, common: &CommonKey, audio: bool) {
    let Some(first) = playlist.segments.first_mut() else {
        return;
    };
    let mut tags: Vec<ExtTag> = sample_keys(common, audio)
        .into_iter()
        .map(|rest| ExtTag {
            tag: "X-KEY".into(),
            rest: Some(rest),
        })
        .collect();
    if let Some(map) = first.map.take() {
        tags.push(ExtTag {
            tag: "X-MAP".into(),
            rest: Some(format!("URI=\"{}\"", attr::uri(&map.uri))),
        });
    }
    first.unknown_tags.splice(0..0, tags);
}

/// Turns the playlist's AES-128 keys into SAMPLE-AES keys of the identity key format, which needs
/// version 5 (RFC 8216 §7), each followed by FairPlay's key with the same IV when it is signalled.
fn encrypt_samples(playlist: &mut MediaPlaylist, fairplay_uri: Option<&str>) {
    for segment in &mut playlist.segments {
        let Some(key) = segment.key.as_mut() else {
            continue;
        };
        key.method = KeyMethod::SampleAES;
        key.keyformat = Some("identity".into());
        if let Some(uri) = fairplay_uri {
            segment.unknown_tags.push(ExtTag {
                tag: "X-KEY".into(),
                rest: Some(fairplay_key(uri, key.iv.as_deref())),
            });
        }
    }
    playlist.version = playlist.version.max(Some(5));
}

/// FairPlay's key tag attributes (Apple's HLS authoring spec): the `skd://` URI by which the
/// operator's key server knows the key, validated free of quotes and whitespace.
fn fairplay_key(uri: &str, iv: Option<&str>) -> String {
    let iv = iv.map(|iv| format!(",IV={iv}")).unwrap_or_default();
    format!("METHOD=SAMPLE-AES,URI=\"{uri}\"{iv},KEYFORMAT=\"{FAIRPLAY_KEY_FORMAT}\",KEYFORMATVERSIONS=\"1\"")
}

/// The master playlist's EXT-X-SESSION-KEY tags: the media playlists' keys, each once, so a
/// player may set up its keys before it reads a media playlist (RFC 8216 §4.3.4.5).
fn session_keys(common: &CommonKey) -> Vec<ExtTag> {
    let mut keys = sample_keys(common, false);
    keys.extend(
        sample_keys(common, true)
            .into_iter()
            .filter(|key| !keys.contains(key))
            .collect::<Vec<_>>(),
    );
    keys.into_iter()
        .map(|rest| ExtTag {
            tag: "X-SESSION-KEY".into(),
            rest: Some(rest),
        })
        .collect()
}

/// The EXT-X-KEY attributes of each signalled system: the key ID (ClearKey, as hls.js reads it
/// from the data URI), the Widevine PSSH box, the PlayReady header object, each as a data URI;
/// then FairPlay's `skd://` URI (cbcs only, as validated).
fn sample_keys(common: &CommonKey, audio: bool) -> Vec<String> {
    let method = match common.scheme {
        CommonScheme::Cbcs => "SAMPLE-AES",
        CommonScheme::Cenc => "SAMPLE-AES-CTR",
    };
    let kid = common.kid(audio);
    let kid_hex = kid.hex();
    common
        .psshs(audio)
        .into_iter()
        .map(|(system, pssh)| {
            let (format, data) = match system {
                DrmSystem::ClearKey => (
                    "org.w3.clearkey",
                    format!("data:text/plain;base64,{}", BASE64.encode(kid.0)),
                ),
                DrmSystem::Widevine => (
                    "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",
                    format!("data:text/plain;base64,{}", BASE64.encode(&pssh)),
                ),
                // A version 0 box: the header object follows its 32 bytes of header.
                DrmSystem::PlayReady => (
                    "com.microsoft.playready",
                    format!("data:text/plain;charset=UTF-16;base64,{}", BASE64.encode(&pssh[32..])),
                ),
                DrmSystem::FairPlay => unreachable!("psshs gives no FairPlay box"),
            };
            format!("METHOD={method},URI=\"{data}\",KEYID=0x{kid_hex},KEYFORMAT=\"{format}\",KEYFORMATVERSIONS=\"1\"")
        })
        .chain(
            common
                .options
                .fairplay_uri
                .as_deref()
                .map(|uri| fairplay_key(uri, None)),
        )
        .collect()
}

/// The URI of a key file in the media playlists of a package published at `output`: the fixed
/// one (`--key-url`, a key-info file), or the relative path from a rendition's folder, one level
/// below the package root, to the key file, percent-encoded.
pub fn key_uri(period: &KeyPeriod, output: &Path) -> String {
    period
        .uri
        .clone()
        .unwrap_or_else(|| relative_path(&output.join("rendition"), &period.file))
}

/// The path from folder `from` to `to`, both absolute, as a relative URI.
fn relative_path(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let up = std::iter::repeat_n("..".to_owned(), from.len() - common);
    let down = to[common..]
        .iter()
        .map(|c| attr::path_segment(&c.as_os_str().to_string_lossy()));
    up.chain(down).collect::<Vec<_>>().join("/")
}

/// A media playlist; with `keys` (the package's key periods and its published location) an
/// EXT-X-KEY with an explicit IV opens every run of segments under one key, and nowhere else.
/// A live one numbers its first segment, dates every segment, and ends only with the source.
pub fn media_playlist(
    media: &SegmentedStream,
    target: u64,
    keys: Option<(&[KeyPeriod], &Path)>,
    live: Option<&LiveState>,
) -> MediaPlaylist {
    let map = media.init.as_ref().map(|uri| Map {
        uri: uri.clone(),
        ..Map::default()
    });
    let version = if map.is_some() {
        PLAYLIST_VERSION_WITH_MAP
    } else {
        PLAYLIST_VERSION
    };
    MediaPlaylist {
        version: Some(version),
        target_duration: target,
        media_sequence: live.map_or(0, |l| l.first as u64),
        segments: media
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| MediaSegment {
                uri: s.uri.clone(),
                duration: millis(s.duration) as f32,
                // m3u8-rs writes EXT-X-MAP (before EXT-X-KEY, so the init segment is clear) and
                // EXT-X-KEY on every segment that carries them: set each only where it changes.
                map: if i == 0 { map.clone() } else { None },
                key: keys
                    .zip(s.key)
                    .filter(|_| i == 0 || media.segments[i - 1].key != s.key)
                    .map(|((periods, output), p)| Key {
                        method: KeyMethod::AES128,
                        uri: Some(key_uri(&periods[p], output)),
                        iv: Some(periods[p].iv.to_string()),
                        ..Key::default()
                    }),
                program_date_time: live.map(|l| l.time_of(media, s).fixed_offset()),
                ..MediaSegment::empty()
            })
            .collect(),
        end_list: live.is_none_or(|l| l.ended),
        playlist_type: match live {
            None => Some(MediaPlaylistType::Vod),
            Some(LiveState { window: None, .. }) => Some(MediaPlaylistType::Event),
            Some(_) => None,
        },
        ..MediaPlaylist::default()
    }
}

pub fn master_playlist(package: &Package, target: u64) -> MasterPlaylist {
    let groups = audio_groups(&package.audio);
    let mut variants: Vec<VariantStream> = Vec::new();
    let mut alternatives: Vec<AlternativeMedia> = Vec::new();
    for group in &groups {
        let rates = GroupRates::of(group, target);
        variants.extend(
            package
                .video
                .iter()
                .map(|v| video_variant(v, Some((group, &rates)), target)),
        );
        // Audio alone: the variant is the group's default rendition, and a group only when there
        // is a choice, or other layouts whose CHANNELS a player must read to choose.
        let single = package.video.is_empty() && groups.len() == 1 && group.members.len() == 1;
        if let (true, Some((a, _))) = (package.video.is_empty(), group.members.iter().find(|(_, d)| *d)) {
            variants.push(VariantStream {
                uri: format!("{}/{MEDIA_PLAYLIST}", a.name),
                bandwidth: rates.peak.round() as u64,
                average_bandwidth: Some(rates.average.round() as u64),
                codecs: Some(rates.codecs.clone()),
                audio: (!single).then(|| group.id.clone()),
                ..VariantStream::default()
            });
        }
        if !single {
            alternatives.extend(
                group
                    .members
                    .iter()
                    .map(|(a, default)| audio_media(a, &group.id, *default)),
            );
        }
    }
    if groups.is_empty() {
        variants.extend(package.video.iter().map(|v| video_variant(v, None, target)));
    }
    let subtitles = subtitle_media(package.subtitles);
    if !subtitles.is_empty() {
        variants
            .iter_mut()
            .for_each(|v| v.subtitles = Some(SUBTITLES_GROUP.to_owned()));
    }
    alternatives.extend(subtitles);
    alternatives.extend(signal_captions(package, &mut variants));
    MasterPlaylist {
        version: Some(PLAYLIST_VERSION),
        variants,
        // Every segment of every rendition starts with a keyframe: the segmenter refuses otherwise.
        independent_segments: true,
        alternatives,
        ..MasterPlaylist::default()
    }
}

/// CLOSED-CAPTIONS on every video variant: the group of the CEA-608 rendition (returned, once)
/// when its rung carries captions, NONE when it does not (RFC 8216bis §4.4.6.2: players then do
/// not look for them), nothing when the pass cannot tell. 608 captions state no language: the
/// rendition says English, the language US broadcast captions CC1 carry.
fn signal_captions(package: &Package, variants: &mut [VariantStream]) -> Option<AlternativeMedia> {
    // Matched by URI: a rung may have several variants (one per audio group).
    for variant in variants.iter_mut() {
        let video = package
            .video
            .iter()
            .find(|v| variant.uri == format!("{}/{MEDIA_PLAYLIST}", v.name));
        variant.closed_captions = video.and_then(|v| package.captions(v)).map(|captions| match captions {
            true => ClosedCaptionGroupId::GroupId(CAPTIONS_GROUP.to_owned()),
            false => ClosedCaptionGroupId::None,
        });
    }
    package
        .video
        .iter()
        .any(|v| package.captions(v) == Some(true))
        .then(|| AlternativeMedia {
            media_type: AlternativeMediaType::ClosedCaptions,
            group_id: CAPTIONS_GROUP.to_owned(),
            language: Some("en".to_owned()),
            name: "English".to_owned(),
            // Like subtitles: the viewer turns them on.
            default: false,
            autoselect: true,
            instream_id: Some(InstreamId::CC(1)),
            ..AlternativeMedia::default()
        })
}

/// One HLS audio group: its GROUP-ID and its renditions, each with whether it is the group's
/// DEFAULT (exactly one is).
struct AudioGroup<'p> {
    id: String,
    members: Vec<(&'p AudioTrack<'p>, bool)>,
}

/// The audio groups of Apple's HLS authoring spec for stereo beside multichannel audio: one per
/// channel layout, each video variant repeated with each, so a player that plays stereo alone
/// never picks 5.1 (it keeps to the variants whose CODECS and group it can play). A group lists
/// each source stream once, in its layout, else (in a multichannel group) in stereo, so every
/// language is in every group. A package of one layout has the one group `audio`, as before.
fn audio_groups<'p>(audio: &'p [AudioTrack<'p>]) -> Vec<AudioGroup<'p>> {
    let layout = |a: &AudioTrack| a.channels.max(2);
    let mut layouts: Vec<u16> = audio.iter().map(layout).collect();
    layouts.sort_unstable();
    layouts.dedup();
    let has_layout = |stream: usize, channels: u16| audio.iter().any(|b| b.stream == stream && layout(b) == channels);
    let first_of = |stream: usize| audio.iter().position(|b| b.stream == stream);
    layouts
        .iter()
        .map(|&channels| {
            let mut members: Vec<&AudioTrack> = audio
                .iter()
                .filter(|a| match layout(a) {
                    l if l == channels => true,
                    2 => !has_layout(a.stream, channels),
                    _ => false,
                })
                .collect();
            members.sort_by_key(|a| first_of(a.stream));
            let default = members.iter().position(|a| a.default).unwrap_or(0);
            AudioGroup {
                id: match layouts.len() {
                    1 => AUDIO_GROUP.to_owned(),
                    _ => format!("{AUDIO_GROUP}-{}", layout_name(channels)),
                },
                members: members
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| (a, i == default))
                    .collect(),
            }
        })
        .collect()
}

/// What a group of this many channels is called: `stereo`, `5.1`, `8ch`.
fn layout_name(channels: u16) -> String {
    match channels {
        2 => "stereo".to_owned(),
        6 => "5.1".to_owned(),
        n => format!("{n}ch"),
    }
}

/// What an audio group adds to a variant: a variant's bandwidth counts the richest rendition of
/// its audio group (RFC 8216 §4.3.4.2), its CODECS every codec in the group.
struct GroupRates {
    peak: f64,
    average: f64,
    codecs: String,
}

impl GroupRates {
    fn of(group: &AudioGroup, target: u64) -> GroupRates {
        let richest =
            |rate: &dyn Fn(&AudioTrack) -> f64| group.members.iter().map(|(a, _)| rate(a)).fold(0.0, f64::max);
        let mut codecs: Vec<&str> = group.members.iter().map(|(a, _)| a.rendition.codecs.as_str()).collect();
        codecs.dedup();
        GroupRates {
            peak: richest(&|a| peak_bitrate(&a.rendition.media.segments, target)),
            average: richest(&|a| average_bitrate(&a.rendition.media.segments)),
            codecs: codecs.join(","),
        }
    }
}

/// A video rendition's variant, with this audio group's renditions (or none).
fn video_variant(v: &VideoTrack, audio: Option<(&AudioGroup, &GroupRates)>, target: u64) -> VariantStream {
    let (audio_peak, audio_average) = audio.map_or((0.0, 0.0), |(_, r)| (r.peak, r.average));
    VariantStream {
        uri: format!("{}/{MEDIA_PLAYLIST}", v.name),
        bandwidth: (peak_bitrate(&v.rendition.media.segments, target) + audio_peak).round() as u64,
        average_bandwidth: Some((average_bitrate(&v.rendition.media.segments) + audio_average).round() as u64),
        codecs: Some(match audio {
            Some((_, rates)) => format!("{},{}", v.rendition.codecs, rates.codecs),
            None => v.rendition.codecs.clone(),
        }),
        resolution: Some(Resolution {
            width: u64::from(v.width),
            height: u64::from(v.height),
        }),
        audio: audio.map(|(group, _)| group.id.clone()),
        // m3u8-rs prints FRAME-RATE with as few digits as possible; HLS wants three decimals.
        other_attributes: Some(HashMap::from([(
            "FRAME-RATE".to_owned(),
            QuotedOrUnquoted::Unquoted(format!("{:.3}", f64::from(v.frame_rate))),
        )])),
        ..VariantStream::default()
    }
}

fn audio_media(audio: &AudioTrack, group: &str, default: bool) -> AlternativeMedia {
    AlternativeMedia {
        media_type: AlternativeMediaType::Audio,
        uri: Some(format!("{}/{MEDIA_PLAYLIST}", audio.name)),
        group_id: group.to_owned(),
        language: Some(audio.language_tag()),
        name: audio.label.to_owned(),
        default,
        // A commentary is chosen, never picked; RFC 8216 §4.3.4.1.1 wants the default AUTOSELECT.
        autoselect: default || !audio.commentary,
        characteristics: audio
            .describes_video
            .then(|| "public.accessibility.describes-video".to_owned()),
        channels: Some(audio.channels.to_string()),
        ..AlternativeMedia::default()
    }
}

/// The subtitle renditions, each NAME unique in the group. None is DEFAULT (a viewer turns
/// subtitles on); every one is AUTOSELECT, which lets a player pick one in the viewer's language,
/// and a forced one when none is chosen.
fn subtitle_media(subtitles: &[TextRendition]) -> Vec<AlternativeMedia> {
    let mut names: Vec<String> = Vec::new();
    subtitles
        .iter()
        .map(|s| {
            let name = attr::unique_name(&attr::quoted_text(&s.track.name), &names);
            names.push(name.clone());
            AlternativeMedia {
                media_type: AlternativeMediaType::Subtitles,
                uri: Some(format!("{}/{MEDIA_PLAYLIST}", s.name)),
                group_id: SUBTITLES_GROUP.to_owned(),
                language: language::well_formed(&s.track.language).map(str::to_owned),
                name,
                default: false,
                autoselect: true,
                forced: s.track.forced,
                characteristics: s.track.hearing_impaired.then(|| SDH_CHARACTERISTICS.to_owned()),
                ..AlternativeMedia::default()
            }
        })
        .collect()
}
