//! A small, strict HLS playlist parser (the subset of RFC 8216 a VOD package uses),
//! independent of the m3u8-rs crate that the product writes playlists with.
//!
//! Strict means: `#EXTM3U` must be the first line, a tag this parser does not know is an
//! error (so a misspelt tag fails instead of being ignored), a tag that may appear once
//! must not appear twice, and attribute lists must be well formed.

use super::aes;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, PartialEq)]
enum AttributeValue {
    Quoted(String),
    Plain(String),
}

/// An attribute list (RFC 8216 §4.2); quoted strings may contain commas.
#[derive(Debug)]
pub struct Attributes(BTreeMap<String, AttributeValue>);

impl Attributes {
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut attributes = BTreeMap::new();
        let mut rest = list;
        while !rest.is_empty() {
            let (name, after_name) = rest
                .split_once('=')
                .ok_or_else(|| format!("attribute without `=` in {list:?}"))?;
            let valid_name = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-';
            if name.is_empty() || !name.chars().all(valid_name) {
                return Err(format!("bad attribute name {name:?} in {list:?}"));
            }
            let (value, after_value) =
                attribute_value(after_name).ok_or_else(|| format!("bad value of {name} in {list:?}"))?;
            if attributes.insert(name.to_string(), value).is_some() {
                return Err(format!("{name} appears twice in {list:?}"));
            }
            rest = match after_value.strip_prefix(',') {
                Some("") => return Err(format!("trailing comma in {list:?}")),
                Some(next) => next,
                None => after_value,
            };
        }
        Ok(Self(attributes))
    }

    /// The content of a quoted-string attribute; panics if it is not quoted.
    pub fn quoted(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|value| match value {
            AttributeValue::Quoted(text) => text.as_str(),
            AttributeValue::Plain(text) => panic!("{name}={text} must be a quoted string"),
        })
    }

    /// An unquoted attribute (number, resolution, enumerated string); panics if quoted.
    pub fn plain(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|value| match value {
            AttributeValue::Plain(text) => text.as_str(),
            AttributeValue::Quoted(text) => panic!("{name}=\"{text}\" must not be quoted"),
        })
    }
}

/// A quoted string up to its closing quote, or a plain value up to the next comma;
/// returns the value and what follows it (empty or starting with a comma).
fn attribute_value(text: &str) -> Option<(AttributeValue, &str)> {
    let (value, rest) = match text.strip_prefix('"') {
        Some(quoted) => {
            let end = quoted.find('"')?;
            let value = AttributeValue::Quoted(quoted[..end].to_string());
            (value, &quoted[end + 1..])
        }
        None => {
            let end = text.find(',').unwrap_or(text.len());
            if end == 0 {
                return None;
            }
            (AttributeValue::Plain(text[..end].to_string()), &text[end..])
        }
    };
    (rest.is_empty() || rest.starts_with(',')).then_some((value, rest))
}

#[derive(Debug)]
pub struct Variant {
    pub attributes: Attributes,
    pub uri: String,
}

#[derive(Debug, Default)]
pub struct MasterPlaylist {
    pub independent_segments: bool,
    pub variants: Vec<Variant>,
    /// The attribute lists of the EXT-X-MEDIA tags.
    pub media: Vec<Attributes>,
}

/// The key of `#EXT-X-KEY:METHOD=AES-128` (RFC 8216 §4.3.2.4): each segment it applies to
/// is encrypted whole with AES-128-CBC and PKCS#7 padding.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// Where the key's 16 bytes are, relative to the playlist.
    pub uri: String,
    /// The IV attribute; without it, a segment's IV is its media sequence number.
    pub iv: Option<u128>,
}

#[derive(Debug)]
pub struct MediaSegment {
    pub duration: f64,
    pub uri: String,
    /// The key in force: that of the last EXT-X-KEY before the segment, unless METHOD=NONE.
    pub key: Option<Key>,
    /// The EXT-X-PROGRAM-DATE-TIME just before the segment, in seconds since the Unix epoch.
    pub date: Option<f64>,
}

#[derive(Debug)]
pub struct MediaPlaylist {
    pub version: Option<u32>,
    pub target_duration: u64,
    pub media_sequence: u64,
    pub playlist_type: Option<String>,
    /// The URI of the EXT-X-MAP (the init segment of fMP4 segments).
    pub map: Option<String>,
    /// The key in force at EXT-X-MAP, with which the init segment is encrypted.
    pub map_key: Option<Key>,
    /// For every EXT-X-KEY, the index of the segment it comes before.
    pub key_tags: Vec<usize>,
    pub segments: Vec<MediaSegment>,
    pub endlist: bool,
}

/// A playlist line that matters: a tag with its value, or a URI. Blank lines and
/// comments (`#` not followed by `EXT`) are skipped.
enum Line<'a> {
    Tag(&'a str, Option<&'a str>),
    Uri(&'a str),
}

/// The numbered lines after the mandatory `#EXTM3U` first line.
fn body(text: &str) -> Result<Vec<(usize, Line<'_>)>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, "#EXTM3U")) => {}
        first => {
            let first = first.map(|(_, line)| line);
            return Err(format!("first line must be #EXTM3U, found {first:?}"));
        }
    }
    let meaningful = lines.filter_map(|(index, line)| {
        let line = if let Some(tag) = line.strip_prefix('#') {
            if !tag.starts_with("EXT") {
                return None;
            }
            match tag.split_once(':') {
                Some((name, value)) => Line::Tag(name, Some(value)),
                None => Line::Tag(tag, None),
            }
        } else if line.trim().is_empty() {
            return None;
        } else {
            Line::Uri(line)
        };
        Some((index + 1, line))
    });
    Ok(meaningful.collect())
}

fn set_once<T>(slot: &mut Option<T>, value: T, tag: &str) -> Result<(), String> {
    match slot.replace(value) {
        Some(_) => Err(format!("{tag} appears twice")),
        None => Ok(()),
    }
}

fn parse_number<T: std::str::FromStr>(value: Option<&str>, tag: &str) -> Result<T, String> {
    value
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| format!("{tag} needs a decimal integer, found {value:?}"))
}

pub fn parse_master(text: &str) -> Result<MasterPlaylist, String> {
    let mut master = MasterPlaylist::default();
    let mut independent = None;
    let mut pending_variant: Option<Attributes> = None;
    for (number, line) in body(text)? {
        let located = |message: String| format!("line {number}: {message}");
        match (line, pending_variant.take()) {
            (Line::Uri(uri), Some(attributes)) => master.variants.push(Variant {
                attributes,
                uri: uri.to_string(),
            }),
            (_, Some(_)) => return Err(located("EXT-X-STREAM-INF is not followed by a URI".into())),
            (Line::Uri(uri), None) => {
                return Err(located(format!("URI {uri:?} without EXT-X-STREAM-INF")));
            }
            (Line::Tag("EXT-X-STREAM-INF", Some(list)), None) => {
                pending_variant = Some(Attributes::parse(list).map_err(located)?);
            }
            (Line::Tag("EXT-X-MEDIA", Some(list)), None) => {
                master.media.push(Attributes::parse(list).map_err(located)?);
            }
            (Line::Tag(tag @ "EXT-X-INDEPENDENT-SEGMENTS", None), None) => {
                set_once(&mut independent, (), tag).map_err(located)?;
            }
            (Line::Tag(tag @ "EXT-X-VERSION", value), None) => {
                parse_number::<u32>(value, tag).map_err(located)?;
            }
            (Line::Tag(tag, _), None) => {
                return Err(located(format!("unexpected tag #{tag} in a master playlist")));
            }
        }
    }
    if pending_variant.is_some() {
        return Err("the last EXT-X-STREAM-INF has no URI".into());
    }
    master.independent_segments = independent.is_some();
    Ok(master)
}

pub fn parse_media(text: &str) -> Result<MediaPlaylist, String> {
    let mut version = None;
    let mut target_duration = None;
    let mut media_sequence = None;
    let mut playlist_type = None;
    let mut independent = None;
    let mut map = None;
    let mut map_key = None;
    let mut key = None;
    let mut key_tags = Vec::new();
    let mut endlist = None;
    let mut segments = Vec::new();
    let mut pending_duration: Option<f64> = None;
    let mut pending_date: Option<f64> = None;
    for (number, line) in body(text)? {
        let located = |message: String| format!("line {number}: {message}");
        if endlist.is_some() {
            return Err(located("content after EXT-X-ENDLIST".into()));
        }
        match (line, pending_duration.take()) {
            (Line::Uri(uri), Some(duration)) => segments.push(MediaSegment {
                duration,
                uri: uri.to_string(),
                key: key.clone(),
                date: pending_date.take(),
            }),
            (_, Some(_)) => return Err(located("EXTINF is not followed by a URI".into())),
            (Line::Uri(uri), None) => return Err(located(format!("URI {uri:?} without EXTINF"))),
            (Line::Tag("EXTINF", Some(value)), None) => {
                pending_duration = Some(extinf_duration(value).map_err(located)?);
            }
            (Line::Tag(tag @ "EXT-X-PROGRAM-DATE-TIME", value), None) => {
                let date = value
                    .and_then(unix_seconds)
                    .ok_or_else(|| located(format!("{tag} {value:?}")))?;
                set_once(&mut pending_date, date, tag).map_err(located)?;
            }
            (Line::Tag(tag @ "EXT-X-VERSION", value), None) => {
                let parsed = parse_number(value, tag).map_err(located)?;
                set_once(&mut version, parsed, tag).map_err(located)?;
            }
            (Line::Tag(tag @ "EXT-X-TARGETDURATION", value), None) => {
                let parsed = parse_number(value, tag).map_err(located)?;
                set_once(&mut target_duration, parsed, tag).map_err(located)?;
            }
            (Line::Tag(tag @ "EXT-X-MEDIA-SEQUENCE", value), None) if segments.is_empty() => {
                let parsed = parse_number(value, tag).map_err(located)?;
                set_once(&mut media_sequence, parsed, tag).map_err(located)?;
            }
            // One init segment for every segment: the tag comes before the first one.
            (Line::Tag(tag @ "EXT-X-MAP", Some(list)), None) if segments.is_empty() => {
                let uri = map_uri(list).map_err(located)?;
                set_once(&mut map, uri, tag).map_err(located)?;
                map_key = key.clone();
            }
            (Line::Tag("EXT-X-KEY", Some(list)), None) => {
                if key_tags.last() == Some(&segments.len()) {
                    return Err(located("two EXT-X-KEY tags before one segment".into()));
                }
                key = parse_key(list).map_err(located)?;
                key_tags.push(segments.len());
            }
            (Line::Tag(tag @ "EXT-X-PLAYLIST-TYPE", Some(kind @ ("VOD" | "EVENT"))), None) => {
                set_once(&mut playlist_type, kind.to_string(), tag).map_err(located)?;
            }
            (Line::Tag(tag @ "EXT-X-INDEPENDENT-SEGMENTS", None), None) => {
                set_once(&mut independent, (), tag).map_err(located)?;
            }
            (Line::Tag(tag @ "EXT-X-ENDLIST", None), None) => {
                set_once(&mut endlist, (), tag).map_err(located)?;
            }
            (Line::Tag(tag, value), None) => {
                return Err(located(format!("unexpected #{tag} {value:?} in a media playlist")));
            }
        }
    }
    if pending_duration.is_some() {
        return Err("the last EXTINF has no URI".into());
    }
    if key_tags.last() == Some(&segments.len()) {
        return Err("an EXT-X-KEY after the last segment applies to none".into());
    }
    Ok(MediaPlaylist {
        version,
        target_duration: target_duration.ok_or("EXT-X-TARGETDURATION is missing")?,
        media_sequence: media_sequence.unwrap_or(0),
        playlist_type,
        map,
        map_key,
        key_tags,
        segments,
        endlist: endlist.is_some(),
    })
}

/// The URI of `#EXT-X-MAP:URI="<uri>"`; a BYTERANGE or any other attribute is refused.
fn map_uri(list: &str) -> Result<String, String> {
    let attributes = Attributes::parse(list)?;
    match attributes.0.iter().collect::<Vec<_>>()[..] {
        [(name, AttributeValue::Quoted(uri))] if name == "URI" => Ok(uri.clone()),
        _ => Err(format!("EXT-X-MAP:{list} must have a quoted URI and nothing else")),
    }
}

/// The key of `#EXT-X-KEY:<attributes>`: METHOD=NONE alone (no key), or METHOD=AES-128 with
/// a quoted URI and an optional IV of 0x and 32 hex digits. Any other method or attribute
/// (KEYFORMAT…) is refused.
fn parse_key(list: &str) -> Result<Option<Key>, String> {
    use AttributeValue::{Plain, Quoted};
    let attributes = Attributes::parse(list)?;
    let get = |name: &str| attributes.0.get(name);
    let unknown = attributes
        .0
        .keys()
        .find(|name| !["METHOD", "URI", "IV"].contains(&name.as_str()));
    if let Some(name) = unknown {
        return Err(format!("EXT-X-KEY:{list}: unexpected attribute {name}"));
    }
    match (get("METHOD"), get("URI"), get("IV")) {
        (Some(Plain(method)), None, None) if method == "NONE" => Ok(None),
        (Some(Plain(method)), Some(Quoted(uri)), iv) if method == "AES-128" => {
            let iv = match iv {
                None => None,
                Some(Plain(text)) => Some(parse_iv(text)?),
                Some(Quoted(text)) => return Err(format!("IV=\"{text}\" must not be quoted")),
            };
            Ok(Some(Key { uri: uri.clone(), iv }))
        }
        _ => Err(format!(
            "EXT-X-KEY:{list} must be METHOD=NONE alone or METHOD=AES-128 with a quoted URI"
        )),
    }
}

/// An IV attribute: `0x` (or `0X`) and 32 hex digits.
fn parse_iv(text: &str) -> Result<u128, String> {
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
    digits
        .and_then(aes::from_hex)
        .ok_or_else(|| format!("IV={text} is not 0x and 32 hex digits"))
}

/// The duration of `#EXTINF:<duration>,[<title>]`.
fn extinf_duration(value: &str) -> Result<f64, String> {
    let (duration, _title) = value
        .split_once(',')
        .ok_or_else(|| format!("EXTINF:{value} lacks its comma"))?;
    match duration.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Ok(seconds),
        _ => Err(format!("EXTINF duration {duration:?} is not a positive number")),
    }
}

pub fn read_master(path: &Path) -> MasterPlaylist {
    parse_master(&read(path)).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

pub fn read_media(path: &Path) -> MediaPlaylist {
    parse_media(&read(path)).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Seconds since the Unix epoch of an RFC 3339 date-time (`2026-11-21T09:12:24.956Z`, or with a
/// `+hh:mm` offset), as EXT-X-PROGRAM-DATE-TIME carries (RFC 8216 §4.3.2.6).
pub fn unix_seconds(text: &str) -> Option<f64> {
    let (date, time) = text.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (clock, offset) = match time.strip_suffix('Z') {
        Some(clock) => (clock, 0.0),
        None => {
            let at = time.rfind(['+', '-'])?;
            let (h, m) = time[at + 1..].split_once(':')?;
            let sign = if time.as_bytes()[at] == b'-' { -1.0 } else { 1.0 };
            (
                &time[..at],
                sign * (h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0),
            )
        }
    };
    let mut hms = clock.splitn(3, ':');
    let (hour, minute, second) = (
        hms.next()?.parse::<f64>().ok()?,
        hms.next()?.parse::<f64>().ok()?,
        hms.next()?.parse::<f64>().ok()?,
    );
    // Days from 1970-01-01 to the civil date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + hour * 3600.0 + minute * 60.0 + second - offset)
}

#[test]
fn unix_seconds_reads_rfc3339() {
    assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0.0));
    assert_eq!(unix_seconds("2000-03-01T00:00:01.5Z"), Some(951_868_801.5));
    assert_eq!(unix_seconds("2000-03-01T09:00:01.5+09:00"), Some(951_868_801.5));
}
