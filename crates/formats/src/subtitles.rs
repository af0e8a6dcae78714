//! Subtitle text: SubRip (`.srt`), WebVTT (`.vtt`) and ASS/SSA (`.ass`, `.ssa`) read into timed
//! cues whose text is WebVTT cue text, and cues written back as WebVTT blocks.
//!
//! Hand-written: the crates that read these formats give no line numbers, and a sidecar with a
//! bad cue must be refused naming its line. Markup is reduced to what WebVTT can say: `<i>`,
//! `<b>`, `<u>` kept, ASS styles and override codes turned into those tags and into cue settings
//! (the `\an` alignment, the `\pos` position), drawings and everything else dropped; `&`, `<`
//! and `>` in plain text are escaped, so a cue's text never holds a blank line or `-->` and every
//! written block reads back the same.

use thiserror::Error;

/// One cue: milliseconds from the start of the media, settings (WebVTT's `line:0 align:start`…)
/// and the text as WebVTT cue text, lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    pub start_ms: u64,
    pub end_ms: u64,
    pub settings: String,
    pub text: String,
}

impl Cue {
    /// A cue of plain text with no settings.
    pub fn new(start_ms: u64, end_ms: u64, text: impl Into<String>) -> Cue {
        Cue {
            start_ms,
            end_ms,
            settings: String::new(),
            text: text.into(),
        }
    }
}

/// A cue's timing line: its start, end and (WebVTT) settings.
struct Timing {
    start_ms: u64,
    end_ms: u64,
    settings: String,
}

impl Timing {
    fn with_text(self, text: String) -> Cue {
        Cue {
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            settings: self.settings,
            text,
        }
    }
}

/// A cue that cannot be read: the 1-based line where it is, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct CueError {
    pub line: usize,
    pub reason: String,
}

/// The syntax a subtitle file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    SubRip,
    WebVtt,
    /// Advanced SubStation Alpha and its predecessor SSA: `Dialogue:` lines of an `[Events]` section.
    Ass,
}

impl Syntax {
    /// The syntax a file name's extension names (`srt`, `vtt`, `ass`, `ssa`, any case).
    pub fn from_extension(extension: &str) -> Option<Syntax> {
        match extension.to_ascii_lowercase().as_str() {
            "srt" => Some(Syntax::SubRip),
            "vtt" => Some(Syntax::WebVtt),
            "ass" | "ssa" => Some(Syntax::Ass),
            _ => None,
        }
    }
}

/// The character encoding a subtitle file was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// Either byte order, told by its byte-order mark.
    Utf16,
    /// Not UTF-8 but text in a legacy 8-bit encoding, read as Windows-1252 (Latin-1 and the
    /// quotes and dashes Windows adds), which Western European subtitle files are written in.
    Windows1252,
}

/// The text of a subtitle file: UTF-8 (a byte-order mark dropped), UTF-16 of either byte order
/// when it starts with its byte-order mark, else, when every byte reads as a printable Windows-1252
/// character or a line break, Windows-1252. Anything else is refused with the reason.
pub fn decode(bytes: &[u8]) -> Result<(String, Encoding), &'static str> {
    let (text, encoding) = match bytes {
        [0xff, 0xfe, rest @ ..] => (utf16(rest, u16::from_le_bytes)?, Encoding::Utf16),
        [0xfe, 0xff, rest @ ..] => (utf16(rest, u16::from_be_bytes)?, Encoding::Utf16),
        [0xef, 0xbb, 0xbf, rest @ ..] => (
            std::str::from_utf8(rest).map_err(|_| NOT_TEXT)?.to_owned(),
            Encoding::Utf8,
        ),
        _ => match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_owned(), Encoding::Utf8),
            Err(_) => (windows_1252(bytes)?, Encoding::Windows1252),
        },
    };
    if text.contains('\0') {
        return Err("not a text file (it holds NUL characters)");
    }
    Ok((text, encoding))
}

const NOT_TEXT: &str = "not UTF-8, UTF-16 or Windows-1252 (Latin-1) text: a binary file, or another encoding \
                        (convert it to UTF-8)";

/// Bytes that are not UTF-8 as Windows-1252, if they read as text: no control characters but
/// tabs and line breaks, and none of the five bytes Windows-1252 leaves undefined (WHATWG maps
/// them to C1 controls), which text in it never holds.
fn windows_1252(bytes: &[u8]) -> Result<String, &'static str> {
    let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
    let printable = |c: char| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\u{c}');
    match text.chars().all(printable) {
        true => Ok(text.into_owned()),
        false => Err(NOT_TEXT),
    }
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, &'static str> {
    if !bytes.len().is_multiple_of(2) {
        return Err("not UTF-16 text: an odd number of bytes after its byte-order mark");
    }
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| "not UTF-16 text: a broken surrogate pair")
}

/// The cues of a whole file. SubRip and WebVTT cues must come in order of their start times and
/// end no earlier than they start; ASS events may come in any order and are sorted. Cues that
/// last no time, or have no text left once their markup is reduced, are left out.
pub fn parse(text: &str, syntax: Syntax) -> Result<Vec<Cue>, CueError> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut cues = match syntax {
        Syntax::SubRip => parse_subrip(&text)?,
        Syntax::WebVtt => parse_webvtt(&text)?,
        Syntax::Ass => parse_ass(&text)?,
    };
    cues.retain(|cue| cue.end_ms > cue.start_ms && !cue.text.is_empty());
    Ok(cues)
}

/// Lines numbered from 1, grouped into blocks separated by blank lines.
fn blocks(text: &str) -> Vec<Vec<(usize, &str)>> {
    let mut blocks = vec![Vec::new()];
    for (index, line) in text.lines().enumerate() {
        match (line.trim().is_empty(), blocks.last_mut()) {
            (true, Some(block)) if block.is_empty() => {}
            (true, _) => blocks.push(Vec::new()),
            (false, Some(block)) => block.push((index + 1, line)),
            (false, None) => unreachable!("blocks starts with one"),
        }
    }
    blocks.retain(|block| !block.is_empty());
    blocks
}

fn error(line: usize, reason: impl Into<String>) -> CueError {
    CueError {
        line,
        reason: reason.into(),
    }
}

/// Adds a cue read at `line`, refusing one that ends before it starts or starts before the one
/// before it.
fn push_in_order(cues: &mut Vec<Cue>, cue: Cue, line: usize) -> Result<(), CueError> {
    if let Some(reason) = order_problem(cues.last(), &cue) {
        return Err(error(line, reason));
    }
    cues.push(cue);
    Ok(())
}

/// What is wrong with `cue` coming after `previous`: ending before it starts, or starting before
/// the cue above it.
fn order_problem(previous: Option<&Cue>, cue: &Cue) -> Option<String> {
    if cue.end_ms < cue.start_ms {
        return Some("the cue ends before it starts".into());
    }
    previous
        .filter(|previous| previous.start_ms > cue.start_ms)
        .map(|previous| {
            format!(
                "the cue starts at {}, before the cue above it ({}): cues must be in order of time",
                timestamp(cue.start_ms),
                timestamp(previous.start_ms)
            )
        })
}

/// Checks cues built in code, which `write_cue` writes as they are: each in order of time, with
/// text (no blank line, no `-->`) and settings (one line) a WebVTT file can hold. The error
/// numbers the first bad cue from 1.
pub fn check(cues: &[Cue]) -> Result<(), (usize, String)> {
    for (index, cue) in cues.iter().enumerate() {
        let previous = index.checked_sub(1).map(|at| &cues[at]);
        let layout = if cue.text.trim().is_empty() {
            Some("the cue has no text".to_owned())
        } else if cue.text.contains("-->") || cue.settings.contains("-->") {
            Some("the cue holds \"-->\", which would end it in a WebVTT file".to_owned())
        } else if cue.text.contains('\r') || cue.text.split('\n').any(|l| l.trim().is_empty()) {
            Some("the cue's text has a blank line or a carriage return".to_owned())
        } else if cue.settings.contains(['\n', '\r']) {
            Some("the cue's settings are more than one line".to_owned())
        } else {
            None
        };
        if let Some(reason) = order_problem(previous, cue).or(layout) {
            return Err((index + 1, reason));
        }
    }
    Ok(())
}

fn parse_subrip(text: &str) -> Result<Vec<Cue>, CueError> {
    let mut cues = Vec::new();
    for block in blocks(text) {
        let mut lines = block.into_iter();
        let (number, first) = lines.next().expect("blocks are not empty");
        let (line, timing) = if first.contains("-->") {
            (number, first)
        } else if first.trim().bytes().all(|b| b.is_ascii_digit()) {
            lines
                .next()
                .ok_or_else(|| error(number, "a cue number with no timing line after it"))?
        } else {
            return Err(error(
                number,
                "expected a cue number or a timing line (00:00:01,000 --> 00:00:02,500)",
            ));
        };
        let timing = timing_line(timing).map_err(|reason| error(line, reason))?;
        let raw: Vec<&str> = lines.map(|(_, l)| l).collect();
        // SubRip's own timing line has no settings; ASS codes in its text may give some.
        let (settings, text) = to_webvtt(&raw.join("\n"), Markup::SubRip);
        push_in_order(&mut cues, Timing { settings, ..timing }.with_text(text), line)?;
    }
    Ok(cues)
}

fn parse_webvtt(text: &str) -> Result<Vec<Cue>, CueError> {
    let mut blocks = blocks(text).into_iter();
    let header = blocks.next().and_then(|block| block.first().map(|(_, l)| *l));
    let signature = header.and_then(|line| line.strip_prefix("WEBVTT"));
    if !signature.is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return Err(error(1, "not a WebVTT file: it does not start with WEBVTT"));
    }
    let mut cues = Vec::new();
    for block in blocks {
        let (number, first) = block[0];
        let keyword = first.split([' ', '\t']).next().unwrap_or_default();
        if !first.contains("-->") && matches!(keyword, "NOTE" | "STYLE" | "REGION") {
            continue;
        }
        let timing_at = usize::from(!first.contains("-->"));
        let (line, timing) = *block
            .get(timing_at)
            .ok_or_else(|| error(number, "a cue identifier with no timing line after it"))?;
        let timing = timing_line(timing).map_err(|reason| error(line, reason))?;
        let payload = &block[timing_at + 1..];
        if let Some((at, _)) = payload.iter().find(|(_, l)| l.contains("-->")) {
            return Err(error(
                *at,
                "a timing line inside a cue's text (a blank line missing before it?)",
            ));
        }
        let text = payload.iter().map(|(_, l)| *l).collect::<Vec<_>>().join("\n");
        push_in_order(&mut cues, timing.with_text(text), line)?;
    }
    Ok(cues)
}

/// The fields of a `Dialogue:` line when the `[Events]` section names none (ASS's own order).
const ASS_FIELDS: [&str; 10] = [
    "Layer", "Start", "End", "Style", "Name", "MarginL", "MarginR", "MarginV", "Effect", "Text",
];

fn parse_ass(text: &str) -> Result<Vec<Cue>, CueError> {
    let script = AssScript::from_script(text);
    let mut fields: Vec<String> = ASS_FIELDS.iter().map(|f| f.to_string()).collect();
    let mut in_events = false;
    let mut cues = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.starts_with('[') {
            in_events = line.trim_end().eq_ignore_ascii_case("[events]");
        } else if let (true, Some(format)) = (in_events, line.strip_prefix("Format:")) {
            fields = format.split(',').map(|f| f.trim().to_owned()).collect();
        } else if let (true, Some(dialogue)) = (in_events, line.strip_prefix("Dialogue:")) {
            cues.push(ass_dialogue(dialogue, &fields, &script).map_err(|reason| error(index + 1, reason))?);
        }
    }
    // ASS orders events by layer and style, not by time: a player sorts them, as this does.
    cues.sort_by_key(|cue| cue.start_ms);
    Ok(cues)
}

fn ass_dialogue(dialogue: &str, fields: &[String], script: &AssScript) -> Result<Cue, String> {
    let values: Vec<&str> = dialogue.trim_start().splitn(fields.len().max(1), ',').collect();
    let field = |name: &str| {
        fields
            .iter()
            .position(|f| f.eq_ignore_ascii_case(name))
            .and_then(|at| values.get(at))
            .ok_or_else(|| format!("a Dialogue line without its {name} field"))
    };
    let start_ms = parse_timestamp(field("Start")?.trim()).ok_or("a Dialogue line with a bad Start time")?;
    let end_ms = parse_timestamp(field("End")?.trim()).ok_or("a Dialogue line with a bad End time")?;
    if end_ms < start_ms {
        return Err("the cue ends before it starts".into());
    }
    let style = field("Style").map_or("", |s| s);
    let (settings, text) = to_webvtt(field("Text")?, script.markup(style));
    Ok(Timing {
        start_ms,
        end_ms,
        settings,
    }
    .with_text(text))
}

/// The start, end and (WebVTT) settings of a `start --> end [settings]` line.
fn timing_line(line: &str) -> Result<Timing, String> {
    let (start, rest) = line.split_once("-->").ok_or("expected a timing line: START --> END")?;
    let mut words = rest.split_whitespace();
    let end = words.next().ok_or("a timing line without an end time")?;
    let bad = |what: &str, time: &str| format!("the {what} time {time:?} is not a timestamp (HH:MM:SS.mmm)");
    let start_ms = parse_timestamp(start.trim()).ok_or_else(|| bad("start", start.trim()))?;
    let end_ms = parse_timestamp(end).ok_or_else(|| bad("end", end))?;
    let settings: Vec<&str> = words.collect();
    if settings.iter().any(|s| s.contains("-->")) {
        return Err("a timing line with two arrows".into());
    }
    Ok(Timing {
        start_ms,
        end_ms,
        settings: settings.join(" "),
    })
}

/// Milliseconds from `[H:]MM:SS.fff`: hours of any length, minutes and seconds below 60, a
/// fraction of 1 to 3 digits after `.` or `,` (ASS writes centiseconds, SubRip a comma).
pub fn parse_timestamp(text: &str) -> Option<u64> {
    let (clock, fraction) = text.rsplit_once(['.', ','])?;
    if !(1..=3).contains(&fraction.len()) {
        return None;
    }
    let fraction_ms = number(fraction)? * 10u64.pow(3 - fraction.len() as u32);
    let parts: Vec<&str> = clock.split(':').collect();
    let (hours, minutes, seconds) = match parts.as_slice() {
        [h, m, s] => (number(h)?, number(m)?, number(s)?),
        [m, s] => (0, number(m)?, number(s)?),
        _ => return None,
    };
    if minutes >= 60 || seconds >= 60 {
        return None;
    }
    hours
        .checked_mul(3_600_000)?
        .checked_add(minutes * 60_000 + seconds * 1000 + fraction_ms)
}

/// Digits only, not too many to overflow.
fn number(text: &str) -> Option<u64> {
    (!text.is_empty() && text.len() <= 9 && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
}

/// `HH:MM:SS.mmm`, as WebVTT writes a time.
pub fn timestamp(ms: u64) -> String {
    let (hours, rest) = (ms / 3_600_000, ms % 3_600_000);
    format!(
        "{hours:02}:{:02}:{:02}.{:03}",
        rest / 60_000,
        rest % 60_000 / 1000,
        rest % 1000
    )
}

/// A cue as a WebVTT block: its timing line and text, and the blank line that ends it. `offset_ms`
/// is taken off both times (a cue starting before it starts at zero).
pub fn write_cue(cue: &Cue, offset_ms: u64, out: &mut String) {
    let start = timestamp(cue.start_ms.saturating_sub(offset_ms));
    let end = timestamp(cue.end_ms.saturating_sub(offset_ms));
    let settings = if cue.settings.is_empty() {
        String::new()
    } else {
        format!(" {}", cue.settings)
    };
    out.push_str(&format!("{start} --> {end}{settings}\n{}\n\n", cue.text));
}

/// The markup a cue's text is written in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Markup {
    /// HTML-like `<i>`, `<b>`, `<u>`, `<font …>`, and (as many files carry) ASS `{\an8}` codes.
    SubRip,
    /// ASS override blocks `{\i1\an8\pos(x,y)}` and the escapes `\N`, `\n`, `\h`; `<` is plain
    /// text. Positions are in the script's own resolution; the event's style gives what it
    /// starts with.
    Ass(PlayRes, AssStyle),
}

/// What an ASS style gives the events in it, of what WebVTT can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AssStyle {
    pub bold: bool,
    pub italic: bool,
    pub underline: bool,
    /// Numpad alignment (SSA's legacy values converted).
    pub alignment: Option<u8>,
}

/// What shapes a script's events beyond their own codes: its resolution and its styles.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AssScript {
    pub play_res: PlayRes,
    styles: Vec<(String, AssStyle)>,
}

impl AssScript {
    /// The resolution and the styles (`[V4+ Styles]`, or SSA's `[V4 Styles]`) of a script or of
    /// the header libav gives its events with.
    pub fn from_script(script: &str) -> AssScript {
        AssScript {
            play_res: PlayRes::from_script(script),
            styles: styles(script),
        }
    }

    /// The markup of an event in `style`; a name the script does not define is its `Default`
    /// style, as libass has it.
    pub fn markup(&self, style: &str) -> Markup {
        let named = |name: &str| self.styles.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
        let style = named(style.trim().trim_start_matches('*')).or_else(|| named("Default"));
        Markup::Ass(self.play_res, style.unwrap_or_default())
    }
}

/// The `Style:` lines of a script, by name.
fn styles(script: &str) -> Vec<(String, AssStyle)> {
    // In a styles section: whether it is SSA's, whose alignment values are not numpad ones.
    let mut section: Option<bool> = None;
    let mut fields: Vec<String> = Vec::new();
    let mut styles = Vec::new();
    for line in script.lines().map(str::trim) {
        if line.starts_with('[') {
            section = match line.to_ascii_lowercase().as_str() {
                "[v4+ styles]" => Some(false),
                "[v4 styles]" => Some(true),
                _ => None,
            };
        } else if let (Some(_), Some(format)) = (section, line.strip_prefix("Format:")) {
            fields = format.split(',').map(|f| f.trim().to_ascii_lowercase()).collect();
        } else if let (Some(ssa), Some(style)) = (section, line.strip_prefix("Style:")) {
            let values: Vec<&str> = style.splitn(fields.len().max(1), ',').map(str::trim).collect();
            let value = |name: &str| fields.iter().position(|f| f == name).and_then(|at| values.get(at));
            let number = |name: &str| value(name).and_then(|v| v.parse::<i32>().ok());
            // -1 is ASS's true; some writers put 1, or a font weight for bold.
            let flag = |name: &str| number(name).is_some_and(|v| v == -1 || v == 1 || v >= 700);
            let alignment = number("alignment").and_then(|a| u32::try_from(a).ok());
            let alignment = match ssa {
                true => alignment.and_then(ssa_alignment),
                false => alignment.filter(|a| (1..=9).contains(a)).map(|a| a as u8),
            };
            if let Some(name) = value("name") {
                let style = AssStyle {
                    bold: flag("bold"),
                    italic: flag("italic"),
                    underline: flag("underline"),
                    alignment,
                };
                styles.push((name.trim_start_matches('*').to_owned(), style));
            }
        }
    }
    styles
}

/// The resolution ASS positions (`\pos(x,y)`) are given in: a script's `PlayResX`/`PlayResY`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayRes {
    pub width: f64,
    pub height: f64,
}

impl Default for PlayRes {
    /// What libass and VSFilter assume of a script that gives neither.
    fn default() -> PlayRes {
        PlayRes {
            width: 384.0,
            height: 288.0,
        }
    }
}

impl PlayRes {
    /// The resolution a script's `[Script Info]` section gives; one that gives one side has the
    /// other at 4:3 (1280×1024 for either of those), as libass has it.
    pub fn from_script(script: &str) -> PlayRes {
        let mut in_info = false;
        let (mut width, mut height) = (None, None);
        for line in script.lines().map(str::trim) {
            if line.starts_with('[') {
                in_info = line.eq_ignore_ascii_case("[script info]");
            } else if let (true, Some((key, value))) = (in_info, line.split_once(':')) {
                let value = value.trim().parse::<u32>().ok().filter(|v| *v > 0).map(f64::from);
                match key.trim() {
                    "PlayResX" => width = value,
                    "PlayResY" => height = value,
                    _ => {}
                }
            }
        }
        match (width, height) {
            (Some(width), Some(height)) => PlayRes { width, height },
            (Some(width), None) => PlayRes {
                width,
                height: if width == 1280.0 { 1024.0 } else { width * 3.0 / 4.0 },
            },
            (None, Some(height)) => PlayRes {
                width: if height == 1024.0 { 1280.0 } else { height * 4.0 / 3.0 },
                height,
            },
            (None, None) => PlayRes::default(),
        }
    }
}

/// A cue's text as WebVTT settings and cue text: styles kept as `<i>`, `<b>`, `<u>`, an ASS
/// alignment and position as `line`/`position`/`align` settings, drawings and every other code
/// dropped, plain `&<>` escaped, blank lines removed.
pub fn to_webvtt(text: &str, markup: Markup) -> (String, String) {
    let (ass, play_res, style) = match markup {
        Markup::Ass(play_res, style) => (true, play_res, style),
        Markup::SubRip => (false, PlayRes::default(), AssStyle::default()),
    };
    let mut writer = CueText {
        style,
        ..CueText::default()
    };
    writer.open_style();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            // SubRip files carry ASS codes (`{\an8}`) too; other braces there are text.
            '{' if rest.contains('}') && (ass || rest.starts_with('\\')) => {
                let (codes, after) = rest.split_once('}').expect("checked");
                writer.override_codes(codes);
                rest = after;
            }
            '<' if !ass && rest.contains('>') => {
                let (tag, after) = rest.split_once('>').expect("checked");
                writer.html_tag(tag);
                rest = after;
            }
            // `\n` breaks a line only in wrap style 2; elsewhere it is a space, as libass shows it.
            '\\' if ass && rest.starts_with(['N', 'n', 'h']) => {
                writer.push(match rest.as_bytes()[0] {
                    b'N' => "\n",
                    b'n' => " ",
                    _ => "\u{a0}",
                });
                rest = &rest[1..];
            }
            '&' => writer.push("&amp;"),
            '<' => writer.push("&lt;"),
            '>' => writer.push("&gt;"),
            c => writer.push(c.encode_utf8(&mut [0; 4])),
        }
    }
    writer.finish(play_res)
}

/// Cue text being written, with the styles left open and the placement asked for.
#[derive(Default)]
struct CueText {
    text: String,
    open: Vec<char>,
    /// The numpad alignment of `\anN` (or SSA's `\aN`).
    alignment: Option<u8>,
    /// `\pos(x,y)` (or where `\move` starts), in the script's resolution.
    position: Option<(f64, f64)>,
    /// Inside `\p1`…`\p0`: the text is drawing commands, not words.
    drawing: bool,
    /// The event's style, which `\r` returns to.
    style: AssStyle,
}

impl CueText {
    fn push(&mut self, text: &str) {
        if !self.drawing {
            self.text.push_str(text);
        }
    }

    /// An ASS override block's codes (`\i1\an8\pos(10,20)`): styles, alignment and position kept.
    fn override_codes(&mut self, codes: &str) {
        for code in codes.split('\\').map(str::trim) {
            let (name, value) = code.split_at(code.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(code.len()));
            let flag = value.parse::<u32>().ok();
            match (name, flag) {
                ("i" | "u", Some(on)) => self.style(name.as_bytes()[0] as char, on == 1),
                // `\b` takes 0/1 or a font weight, bold from 700.
                ("b", Some(weight)) => self.style('b', weight == 1 || weight >= 700),
                ("i" | "u" | "b", None) if value.is_empty() => self.style(name.as_bytes()[0] as char, false),
                ("an", Some(digit @ 1..=9)) => self.alignment = Some(digit as u8),
                ("a", Some(legacy)) => self.alignment = ssa_alignment(legacy).or(self.alignment),
                ("pos" | "move", None) => self.position = coordinates(value).or(self.position),
                ("p", Some(scale)) => self.drawing = scale > 0,
                // `\r` (or `\rStyle`) resets to a style: what libav's mov_text decoder ends styles
                // with. Another style is taken as the event's own, whose name is all there is here.
                ("r", _) => {
                    self.close_all();
                    self.open_style();
                }
                _ => {}
            }
        }
    }

    /// A SubRip tag (`i`, `/b`, `font color=…`): the three styles kept, the rest dropped.
    fn html_tag(&mut self, tag: &str) {
        let tag = tag.trim().to_ascii_lowercase();
        let (closing, name) = match tag.strip_prefix('/') {
            Some(name) => (true, name.trim()),
            None => (false, tag.as_str()),
        };
        if let [style @ (b'i' | b'b' | b'u')] = name.as_bytes() {
            self.style(*style as char, !closing);
        }
    }

    fn style(&mut self, style: char, on: bool) {
        match (on, self.open.iter().rposition(|s| *s == style)) {
            (true, None) => {
                self.open.push(style);
                self.text.push_str(&format!("<{style}>"));
            }
            (false, Some(at)) => {
                // Close the inner styles too, as WebVTT tags must nest; they stay open after it.
                let inner: Vec<char> = self.open.split_off(at + 1);
                self.open.pop();
                inner.iter().rev().for_each(|s| self.text.push_str(&format!("</{s}>")));
                self.text.push_str(&format!("</{style}>"));
                inner.iter().for_each(|s| self.text.push_str(&format!("<{s}>")));
                self.open.extend(inner);
            }
            _ => {}
        }
    }

    fn open_style(&mut self) {
        let AssStyle {
            bold,
            italic,
            underline,
            ..
        } = self.style;
        [(bold, 'b'), (italic, 'i'), (underline, 'u')]
            .into_iter()
            .filter(|(on, _)| *on)
            .for_each(|(_, style)| self.style(style, true));
    }

    fn close_all(&mut self) {
        while let Some(style) = self.open.pop() {
            self.text.push_str(&format!("</{style}>"));
        }
    }

    fn finish(mut self, play_res: PlayRes) -> (String, String) {
        self.close_all();
        let lines: Vec<&str> = self
            .text
            .split(['\n', '\r'])
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .collect();
        let text = if lines.iter().all(|l| is_only_tags(l)) {
            String::new()
        } else {
            lines.join("\n")
        };
        // A style's bottom-centre alignment is WebVTT's own default: no settings for it.
        let styled = self.style.alignment.filter(|numpad| *numpad != 2);
        let settings = match (self.position, self.alignment.or(styled)) {
            (Some(point), _) => {
                let numpad = self.alignment.or(self.style.alignment).unwrap_or(2);
                position_settings(numpad, point, play_res)
            }
            (None, Some(numpad)) => alignment_settings(numpad),
            (None, None) => String::new(),
        };
        (settings, text)
    }
}

/// SSA's `\aN` (1–3 bottom, 5–7 top, 9–11 middle) as a numpad alignment.
fn ssa_alignment(legacy: u32) -> Option<u8> {
    let numpad = match legacy {
        1..=3 => legacy,
        5..=7 => legacy + 2,
        9..=11 => legacy - 5,
        _ => return None,
    };
    Some(numpad as u8)
}

/// The first point of `(x,y…)`: `\pos(x,y)`, or where `\move(x1,y1,x2,y2…)` starts.
fn coordinates(arguments: &str) -> Option<(f64, f64)> {
    let inner = arguments.trim().strip_prefix('(')?.trim_end().trim_end_matches(')');
    let mut numbers = inner
        .split(',')
        .map(|n| n.trim().parse::<f64>().ok().filter(|n| n.is_finite()));
    Some((numbers.next()??, numbers.next()??))
}

/// A line of nothing but tags (`<i></i>`) is no text.
fn is_only_tags(line: &str) -> bool {
    let mut inside = false;
    line.chars().all(|c| {
        let tag = inside || c == '<';
        inside = (inside || c == '<') && c != '>';
        tag || c.is_whitespace()
    })
}

/// The edge of the text a numpad alignment anchors, across (`start`, `center`, `end`).
fn column(numpad: u8) -> &'static str {
    match numpad % 3 {
        1 => "start",
        2 => "center",
        _ => "end",
    }
}

/// The numpad alignment of ASS `\anN` (1 bottom left … 9 top right) as WebVTT cue settings.
fn alignment_settings(numpad: u8) -> String {
    let line = match numpad {
        7..=9 => "line:0 ",
        4..=6 => "line:50% ",
        _ => "",
    };
    format!("{line}align:{}", column(numpad))
}

/// `\pos(x,y)` as WebVTT settings: the point as percentages of the script's resolution, the cue
/// box anchored there by the same edge the alignment anchors the ASS text by (bottom centre
/// unless `\an` says otherwise).
fn position_settings(numpad: u8, (x, y): (f64, f64), play_res: PlayRes) -> String {
    let percent = |value: f64, whole: f64| {
        let rounded = format!("{:.2}", (value / whole * 100.0).clamp(0.0, 100.0));
        rounded.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    let across = match column(numpad) {
        "start" => "line-left",
        "center" => "center",
        _ => "line-right",
    };
    let down = match numpad {
        7..=9 => "start",
        4..=6 => "center",
        _ => "end",
    };
    format!(
        "position:{}%,{across} line:{}%,{down} align:{}",
        percent(x, play_res.width),
        percent(y, play_res.height),
        column(numpad)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subrip_cues_are_read_with_their_markup_reduced() {
        let srt = "1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Hello</i> & <font color=\"red\">you</font>\r\n\r\n\
                   2\r\n00:00:03,000 --> 00:00:04,000 X1:10\r\n{\\an8}こんにちは\r\n二行目\r\n";
        let cues = parse(srt, Syntax::SubRip).unwrap();
        assert_eq!(cues[0], Cue::new(1000, 2500, "<i>Hello</i> &amp; you"));
        assert_eq!(cues[1].text, "こんにちは\n二行目");
        assert_eq!(cues[1].settings, "line:0 align:center");
    }

    #[test]
    fn cues_out_of_order_or_backwards_are_refused_at_their_line() {
        let srt = "1\n00:00:05,000 --> 00:00:06,000\na\n\n2\n00:00:01,000 --> 00:00:02,000\nb\n";
        let error = parse(srt, Syntax::SubRip).unwrap_err();
        assert_eq!(error.line, 6, "{error}");
        assert!(error.reason.contains("in order"), "{error}");
        let backwards = parse("1\n00:00:05,000 --> 00:00:04,000\na\n", Syntax::SubRip).unwrap_err();
        assert_eq!(backwards.to_string(), "line 2: the cue ends before it starts");
        let bad = parse("1\n00:00:05 --> 00:00:06,000\na\n", Syntax::SubRip).unwrap_err();
        assert_eq!(bad.line, 2);
        assert!(parse("just some words\n", Syntax::SubRip).is_err());
    }

    #[test]
    fn cues_built_in_code_are_checked_before_they_are_written() {
        assert_eq!(
            check(&[Cue::new(0, 1000, "a"), Cue::new(500, 600, "<i>b</i>\nc")]),
            Ok(())
        );
        let refused = |cues: &[Cue]| check(cues).unwrap_err();
        assert_eq!(refused(&[Cue::new(0, 1000, "a"), Cue::new(2000, 1000, "b")]).0, 2);
        assert!(
            refused(&[Cue::new(5, 6, "a"), Cue::new(4, 6, "b")])
                .1
                .contains("in order")
        );
        assert!(refused(&[Cue::new(0, 1, "a\n\nb")]).1.contains("blank line"));
        assert!(refused(&[Cue::new(0, 1, "a --> b")]).1.contains("-->"));
        assert!(refused(&[Cue::new(0, 1, " ")]).1.contains("no text"));
    }

    #[test]
    fn webvtt_cues_keep_their_settings_and_skip_notes() {
        let vtt = "WEBVTT - a title\n\nNOTE a comment\n\nSTYLE\n::cue { color: red }\n\n\
                   id-1\n00:01.000 --> 00:02.000 align:start line:0\n<b>Bold</b>\n\n01:00:00.500 --> 01:00:01.000\nlate\n";
        let cues = parse(vtt, Syntax::WebVtt).unwrap();
        assert_eq!(cues.len(), 2);
        assert_eq!((cues[0].start_ms, cues[0].end_ms), (1000, 2000));
        assert_eq!(cues[0].settings, "align:start line:0");
        assert_eq!(cues[1].start_ms, 3_600_500);
        assert_eq!(
            parse("1\n00:01.000 --> 00:02.000\nx\n", Syntax::WebVtt)
                .unwrap_err()
                .line,
            1
        );
    }

    #[test]
    fn ass_events_lose_their_override_codes_but_keep_italics_and_position() {
        let ass = "[Script Info]\nTitle: x\nPlayResX: 640\nPlayResY: 360\n\n[Events]\n\
                   Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n\
                   Dialogue: 0,0:00:03.00,0:00:04.00,Default,,0,0,0,,{\\an8}second\n\
                   Dialogue: 0,0:00:01.50,0:00:02.25,Default,,0,0,0,,{\\i1\\pos(320,90)}Hi, there{\\i0}\\Nnext {\\an7}line\n\
                   Dialogue: 0,0:00:05.00,0:00:06.00,Default,,0,0,0,,{\\b700\\u1}loud{\\b0}\\hand\\nsoft{\\p1}m 0 0 l 10 10{\\p0}\n";
        let cues = parse(ass, Syntax::Ass).unwrap();
        assert_eq!(cues[0].text, "<i>Hi, there</i>\nnext line");
        assert_eq!((cues[0].start_ms, cues[0].end_ms), (1500, 2250));
        assert_eq!(cues[0].settings, "position:50%,line-left line:25%,start align:start");
        assert_eq!(
            (cues[1].text.as_str(), cues[1].settings.as_str()),
            ("second", "line:0 align:center")
        );
        assert_eq!(cues[2].text, "<b><u>loud</u></b><u>\u{a0}and soft</u>");
        assert_eq!(cues[2].settings, "");
        let (_, reset) = to_webvtt(
            "{\\i1}{\\b1}Hello{\\r} & bye",
            Markup::Ass(PlayRes::default(), AssStyle::default()),
        );
        assert_eq!(reset, "<i><b>Hello</b></i> &amp; bye");
        let (_, drawing) = to_webvtt(
            "{\\p1}m 0 0 l 100 0 100 100{\\p0}",
            Markup::Ass(PlayRes::default(), AssStyle::default()),
        );
        assert_eq!(drawing, "");
        let (settings, _) = to_webvtt(
            "{\\a5\\move(-10,300,0,0)}x",
            Markup::Ass(PlayRes::default(), AssStyle::default()),
        );
        assert_eq!(settings, "position:0%,line-left line:100%,start align:start");
    }

    #[test]
    fn an_events_style_gives_its_italics_bold_and_alignment() {
        let ass = "[Script Info]\nPlayResX: 640\nPlayResY: 360\n\n[V4+ Styles]\n\
                   Format: Name, Fontname, Bold, Italic, Underline, Alignment\n\
                   Style: Default,Arial,0,0,0,2\nStyle: Sign,Arial,-1,-1,0,8\n\n[Events]\n\
                   Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n\
                   Dialogue: 0,0:00:01.00,0:00:02.00,Sign,,0,0,0,,Exit\\Nhere{\\i0} now{\\r} again\n\
                   Dialogue: 0,0:00:03.00,0:00:04.00,*Default,,0,0,0,,plain\n\
                   Dialogue: 0,0:00:05.00,0:00:06.00,Unknown,,0,0,0,,{\\pos(64,36)}default\n";
        let cues = parse(ass, Syntax::Ass).unwrap();
        assert_eq!(cues[0].text, "<b><i>Exit\nhere</i> now</b><b><i> again</i></b>");
        assert_eq!(cues[0].settings, "line:0 align:center");
        assert_eq!((cues[1].text.as_str(), cues[1].settings.as_str()), ("plain", ""));
        assert_eq!(cues[2].settings, "position:10%,center line:10%,end align:center");
        let ssa = AssScript::from_script("[V4 Styles]\nFormat: Name, Italic, Alignment\nStyle: Top,-1,6\n");
        let top = AssStyle {
            italic: true,
            alignment: Some(8),
            ..AssStyle::default()
        };
        assert_eq!(ssa.markup("Top"), Markup::Ass(PlayRes::default(), top));
        assert_eq!(
            ssa.markup("Other"),
            Markup::Ass(PlayRes::default(), AssStyle::default())
        );
    }

    #[test]
    fn a_script_without_both_sides_of_its_resolution_has_them_at_4_3() {
        let play_res = |info: &str| PlayRes::from_script(&format!("[Script Info]\n{info}\n[Events]\nPlayResX: 9\n"));
        assert_eq!(play_res(""), PlayRes::default());
        assert_eq!(
            play_res("PlayResY: 720"),
            PlayRes {
                width: 960.0,
                height: 720.0
            }
        );
        assert_eq!(
            play_res("PlayResX: 1280"),
            PlayRes {
                width: 1280.0,
                height: 1024.0
            }
        );
        assert_eq!(
            play_res("PlayResX: 1920\nPlayResY: 1080"),
            PlayRes {
                width: 1920.0,
                height: 1080.0
            }
        );
    }

    #[test]
    fn utf16_and_windows_1252_are_converted_and_binary_refused() {
        let utf16: Vec<u8> = [0xfeff_u16]
            .into_iter()
            .chain("字幕".encode_utf16())
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(decode(&utf16).unwrap(), ("字幕".into(), Encoding::Utf16));
        assert_eq!(
            decode(b"\xef\xbb\xbfWEBVTT").unwrap(),
            ("WEBVTT".into(), Encoding::Utf8)
        );
        assert_eq!(
            decode(b"Caf\xe9 \x93cr\xe8me\x94\r\n").unwrap(),
            ("Café “crème”\r\n".into(), Encoding::Windows1252)
        );
        assert!(
            decode(&[0x89, b'P', b'N', b'G', 0, 0xff])
                .unwrap_err()
                .contains("convert it to UTF-8")
        );
        assert!(decode(b"a\0b").is_err());
        assert!(decode(b"caf\xe9\x1b[0m").is_err(), "an escape character is not text");
        assert!(decode(b"caf\xe9\x81").is_err(), "0x81 is not a Windows-1252 character");
    }

    #[test]
    fn written_cues_read_back_the_same() {
        let cues = vec![
            Cue::new(0, 1500, "a &lt; b"),
            Cue {
                settings: "line:0 align:start".into(),
                ..Cue::new(3_600_000, 3_600_001, "<i>x</i>\ny")
            },
        ];
        let mut vtt = String::from("WEBVTT\n\n");
        cues.iter().for_each(|c| write_cue(c, 0, &mut vtt));
        assert_eq!(parse(&vtt, Syntax::WebVtt).unwrap(), cues);
        assert_eq!(timestamp(3_723_004), "01:02:03.004");
        assert_eq!(parse_timestamp("1:02:03.4"), Some(3_723_400));
        assert_eq!(parse_timestamp("00:60.000"), None);
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        let sample = b"1\n00:00:01,000 --> 00:00:02,500\n<i>Hi</i> {\\an8}\\N\n\n[Events]\nDialogue: 0,0:00:01.00,0:00:02.00,,,0,0,0,,{\\i1}x\n";
        crate::fuzz_bytes(sample, 2000, |bad| {
            if let Ok((text, _)) = decode(bad) {
                for syntax in [Syntax::SubRip, Syntax::WebVtt, Syntax::Ass] {
                    let _ = parse(&text, syntax);
                }
            }
        });
    }
}
