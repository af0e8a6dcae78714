//! A strict WebVTT reader of the tests' own (W3C WebVTT: the signature line, header lines, then
//! cues of an optional identifier, a timing line and text), for judging stream-pack's subtitle
//! segments without its code. It reads the HLS `X-TIMESTAMP-MAP` header (RFC 8216 §3.5).

#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    /// Seconds, as the file writes them.
    pub start: f64,
    pub end: f64,
    pub text: String,
}

#[derive(Debug)]
pub struct WebVtt {
    /// `X-TIMESTAMP-MAP`: the MPEG-TS time (90 kHz) and the cue time (seconds) that are the same
    /// instant.
    pub timestamp_map: Option<(u64, f64)>,
    pub cues: Vec<Cue>,
}

impl WebVtt {
    /// A cue's start and end on the media timeline (seconds of the MPEG-TS clock).
    pub fn media_times(&self, cue: &Cue) -> (f64, f64) {
        let (mpegts, local) = self.timestamp_map.expect("an X-TIMESTAMP-MAP");
        let shift = mpegts as f64 / 90_000.0 - local;
        (cue.start + shift, cue.end + shift)
    }
}

/// `HH:MM:SS.mmm` or `MM:SS.mmm`, exactly as WebVTT writes a timestamp.
fn timestamp(text: &str) -> Result<f64, String> {
    let bad = || format!("not a WebVTT timestamp: {text:?}");
    let (clock, millis) = text.split_once('.').ok_or_else(bad)?;
    let parts: Vec<&str> = clock.split(':').collect();
    let two_digits = |p: &&str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
    let hours_ok = parts.len() == 2 || (parts[0].len() >= 2 && parts[0].bytes().all(|b| b.is_ascii_digit()));
    let ok = (2..=3).contains(&parts.len())
        && hours_ok
        && parts[parts.len() - 2..].iter().all(two_digits)
        && millis.len() == 3
        && millis.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        return Err(bad());
    }
    let numbers: Vec<f64> = parts.iter().map(|p| p.parse::<f64>().unwrap()).collect();
    let seconds = numbers.iter().fold(0.0, |total, n| total * 60.0 + n);
    if numbers[numbers.len() - 1] >= 60.0 || numbers[numbers.len() - 2] >= 60.0 {
        return Err(bad());
    }
    Ok(seconds + millis.parse::<f64>().unwrap() / 1000.0)
}

fn timestamp_map(value: &str) -> Result<(u64, f64), String> {
    let mut mpegts = None;
    let mut local = None;
    for part in value.split(',') {
        match part.split_once(':') {
            Some(("MPEGTS", n)) => mpegts = Some(n.parse::<u64>().map_err(|e| format!("MPEGTS {n:?}: {e}"))?),
            Some(("LOCAL", t)) => local = Some(timestamp(t)?),
            _ => return Err(format!("X-TIMESTAMP-MAP part {part:?}")),
        }
    }
    Ok((mpegts.ok_or("no MPEGTS")?, local.ok_or("no LOCAL")?))
}

/// Reads a WebVTT file, refusing anything the format does not allow.
pub fn parse(text: &str) -> Result<WebVtt, String> {
    let mut lines = text.split('\n');
    let signature = lines.next().unwrap_or_default();
    if !(signature == "WEBVTT" || signature.starts_with("WEBVTT ") || signature.starts_with("WEBVTT\t")) {
        return Err(format!("no WEBVTT signature: {signature:?}"));
    }
    let mut file = WebVtt {
        timestamp_map: None,
        cues: Vec::new(),
    };
    for header in lines.by_ref().take_while(|l| !l.is_empty()) {
        if header.contains("-->") {
            return Err("a cue with no blank line after the header".into());
        }
        if let Some(value) = header.strip_prefix("X-TIMESTAMP-MAP=") {
            file.timestamp_map = Some(timestamp_map(value)?);
        }
    }
    let rest: Vec<&str> = lines.collect();
    for block in rest.split(|l| l.is_empty()).filter(|b| !b.is_empty()) {
        if block[0].starts_with("NOTE") {
            continue;
        }
        let timing_at = usize::from(!block[0].contains("-->"));
        let timing = block.get(timing_at).ok_or("an identifier without a cue")?;
        let (start, rest) = timing
            .split_once(" --> ")
            .ok_or_else(|| format!("bad timing line {timing:?}"))?;
        let end = rest.split([' ', '\t']).next().unwrap_or_default();
        let (start, end) = (timestamp(start)?, timestamp(end)?);
        if end <= start {
            return Err(format!("a cue ending at {end} before it starts at {start}"));
        }
        let text = block[timing_at + 1..].join("\n");
        if text.contains("-->") {
            return Err(format!("a timing line inside a cue's text: {text:?}"));
        }
        if let Some(previous) = file.cues.last().filter(|c: &&Cue| c.start > start) {
            return Err(format!("cues out of order: {start} after {}", previous.start));
        }
        file.cues.push(Cue { start, end, text });
    }
    Ok(file)
}
