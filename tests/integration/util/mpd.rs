//! A small, strict DASH MPD reader (the static SegmentTemplate + SegmentTimeline subset of
//! ISO/IEC 23009-1 that a VOD package uses) on the roxmltree XML parser, independent of the
//! dash-mpd-core crate that the product writes MPDs with.
//!
//! Strict means: every element is in the MPD namespace and is one this reader knows, in its
//! place and as often as allowed (one Period, one SegmentTemplate per Representation, …);
//! an S has only @t, @d and @r; durations are xs:duration values.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

const NAMESPACE: &str = "urn:mpeg:dash:schema:mpd:2011";
const CENC: &str = "urn:mpeg:cenc:2013";
/// DASH-IF's content protection namespace, of the licence URL element `Laurl`.
const DASHIF_CPS: &str = "https://dashif.org/CPS";

/// The attributes of an element that are in no namespace.
#[derive(Debug)]
pub struct Attributes(BTreeMap<String, String>);

impl Attributes {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required attribute parsed as `T`; panics naming it if absent or malformed.
    pub fn parse<T: FromStr>(&self, name: &str) -> T {
        let text = self.get(name).unwrap_or_else(|| panic!("@{name} missing in {self:?}"));
        text.parse()
            .unwrap_or_else(|_| panic!("@{name}={text:?} is not a {}", std::any::type_name::<T>()))
    }

    /// A required xs:duration attribute in seconds.
    pub fn seconds(&self, name: &str) -> f64 {
        let text = self.get(name).unwrap_or_else(|| panic!("@{name} missing in {self:?}"));
        duration(text).unwrap_or_else(|error| panic!("@{name}: {error}"))
    }
}

#[derive(Debug)]
pub struct Mpd {
    pub attributes: Attributes,
    /// The AdaptationSets of the one Period.
    pub adaptation_sets: Vec<AdaptationSet>,
    /// The attributes of each UTCTiming element.
    pub utc_timing: Vec<Attributes>,
}

#[derive(Debug)]
pub struct AdaptationSet {
    pub attributes: Attributes,
    pub representations: Vec<Representation>,
    /// The attributes of each Role element.
    pub roles: Vec<Attributes>,
    /// The attributes of each Accessibility element.
    pub accessibility: Vec<Attributes>,
    /// The text of each Label element.
    pub labels: Vec<String>,
    pub content_protection: Vec<ContentProtection>,
}

/// A ContentProtection descriptor (ISO/IEC 23009-1 §5.8.4.1, ISO/IEC 23001-7 §11.2).
#[derive(Debug)]
pub struct ContentProtection {
    pub attributes: Attributes,
    /// `@cenc:default_KID`.
    pub default_kid: Option<String>,
    /// The text of each `cenc:pssh` child.
    pub pssh: Vec<String>,
    /// The `@Lic_type` and text of each `dashif:Laurl` child.
    pub laurl: Vec<(Option<String>, String)>,
}

#[derive(Debug)]
pub struct Representation {
    pub attributes: Attributes,
    pub audio_channel_configuration: Option<Attributes>,
    pub segment_template: SegmentTemplate,
}

#[derive(Debug)]
pub struct SegmentTemplate {
    pub attributes: Attributes,
    pub timeline: Vec<S>,
}

/// One S element of a SegmentTimeline.
#[derive(Debug, PartialEq)]
pub struct S {
    pub t: Option<u64>,
    pub d: u64,
    pub r: u64,
}

impl SegmentTemplate {
    /// (start, duration) of every segment, in the template's timescale: each S stands for
    /// r + 1 segments of duration d from @t, or from where the previous S ended (0 first).
    pub fn segments(&self) -> Vec<(u64, u64)> {
        let mut segments = Vec::new();
        let mut next = 0;
        for s in &self.timeline {
            let start = s.t.unwrap_or(next);
            segments.extend((0..=s.r).map(|repeat| (start + repeat * s.d, s.d)));
            next = start + (s.r + 1) * s.d;
        }
        segments
    }
}

type Node<'a, 'input> = roxmltree::Node<'a, 'input>;

pub fn parse_mpd(text: &str) -> Result<Mpd, String> {
    let document = roxmltree::Document::parse(text).map_err(|error| error.to_string())?;
    let root = document.root_element();
    check_name(root, "MPD")?;
    // The schema's order: the Periods, then any UTCTiming.
    let all: Vec<Node> = elements(root).collect();
    let periods = all.iter().take_while(|n| n.tag_name().name() == "Period").count();
    let [period] = all[..periods] else {
        return Err("an MPD of this package has exactly one Period, first".into());
    };
    let mut utc_timing = Vec::new();
    for node in &all[periods..] {
        check_name(*node, "UTCTiming").map_err(|error| format!("after the Period: {error}"))?;
        utc_timing.push(attributes(*node));
    }
    let adaptation_sets = children(period, "AdaptationSet")?
        .into_iter()
        .map(adaptation_set)
        .collect::<Result<_, _>>()?;
    Ok(Mpd {
        attributes: attributes(root),
        adaptation_sets,
        utc_timing,
    })
}

fn adaptation_set(node: Node) -> Result<AdaptationSet, String> {
    let mut set = AdaptationSet {
        attributes: attributes(node),
        representations: Vec::new(),
        roles: Vec::new(),
        accessibility: Vec::new(),
        labels: Vec::new(),
        content_protection: Vec::new(),
    };
    for child in elements(node) {
        let name = child.tag_name().name();
        check_name(child, name)?;
        match name {
            "Representation" => set.representations.push(representation(child)?),
            "Role" => set.roles.push(attributes(child)),
            "Accessibility" => set.accessibility.push(attributes(child)),
            "Label" => set.labels.push(child.text().unwrap_or_default().to_owned()),
            "ContentProtection" => set.content_protection.push(content_protection(child)?),
            other => return Err(format!("unexpected <{other}> in an AdaptationSet")),
        }
    }
    if set.representations.is_empty() {
        return Err("an AdaptationSet without a Representation".into());
    }
    Ok(set)
}

fn content_protection(node: Node) -> Result<ContentProtection, String> {
    let (mut pssh, mut laurl) = (Vec::new(), Vec::new());
    for child in elements(node) {
        let tag = child.tag_name();
        let text = child.text().unwrap_or_default().trim().to_owned();
        match (tag.namespace(), tag.name()) {
            (Some(CENC), "pssh") => pssh.push(text),
            (Some(DASHIF_CPS), "Laurl") => laurl.push((child.attribute("Lic_type").map(str::to_owned), text)),
            _ => return Err(format!("unexpected {tag:?} in a ContentProtection")),
        }
    }
    Ok(ContentProtection {
        attributes: attributes(node),
        default_kid: node.attribute((CENC, "default_KID")).map(str::to_owned),
        pssh,
        laurl,
    })
}

fn representation(node: Node) -> Result<Representation, String> {
    let mut channels = None;
    let mut template = None;
    for child in elements(node) {
        let slot = match child.tag_name().name() {
            "AudioChannelConfiguration" => &mut channels,
            "SegmentTemplate" => &mut template,
            other => return Err(format!("unexpected <{other}> in a Representation")),
        };
        check_name(child, child.tag_name().name())?;
        if slot.replace(child).is_some() {
            return Err(format!("two <{}> in a Representation", child.tag_name().name()));
        }
    }
    let template = template.ok_or("a Representation without a SegmentTemplate")?;
    Ok(Representation {
        attributes: attributes(node),
        audio_channel_configuration: channels.map(attributes),
        segment_template: segment_template(template)?,
    })
}

fn segment_template(node: Node) -> Result<SegmentTemplate, String> {
    let [timeline] = children(node, "SegmentTimeline")?[..] else {
        return Err("a SegmentTemplate needs exactly one SegmentTimeline".into());
    };
    let timeline = children(timeline, "S")?
        .into_iter()
        .map(|s| {
            let attributes = attributes(s);
            if let Some(name) = attributes
                .0
                .keys()
                .find(|name| !["t", "d", "r"].contains(&name.as_str()))
            {
                return Err(format!("unexpected @{name} on an S"));
            }
            let number = |name: &str| -> Result<Option<u64>, String> {
                attributes
                    .get(name)
                    .map(|text| text.parse().map_err(|_| format!("S@{name}={text:?}")))
                    .transpose()
            };
            Ok(S {
                t: number("t")?,
                d: number("d")?.ok_or("an S without @d")?,
                r: number("r")?.unwrap_or(0),
            })
        })
        .collect::<Result<Vec<S>, String>>()?;
    if timeline.is_empty() {
        return Err("an empty SegmentTimeline".into());
    }
    Ok(SegmentTemplate {
        attributes: attributes(node),
        timeline,
    })
}

fn check_name(node: Node, name: &str) -> Result<(), String> {
    let tag = node.tag_name();
    if tag.name() == name && tag.namespace() == Some(NAMESPACE) {
        Ok(())
    } else {
        Err(format!("expected <{name}> in {NAMESPACE}, found {tag:?}"))
    }
}

fn elements<'a, 'input>(node: Node<'a, 'input>) -> impl Iterator<Item = Node<'a, 'input>> {
    node.children().filter(Node::is_element)
}

/// The child elements of `node`, which must all be `<name>` (and there must be one).
fn children<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Result<Vec<Node<'a, 'input>>, String> {
    let children: Vec<Node> = elements(node).collect();
    for child in &children {
        check_name(*child, name).map_err(|error| format!("in <{}>: {error}", node.tag_name().name()))?;
    }
    if children.is_empty() {
        return Err(format!("<{}> has no <{name}>", node.tag_name().name()));
    }
    Ok(children)
}

fn attributes(node: Node) -> Attributes {
    let plain = node.attributes().filter(|attribute| attribute.namespace().is_none());
    Attributes(plain.map(|a| (a.name().to_string(), a.value().to_string())).collect())
}

/// An xs:duration of days, hours, minutes and seconds (`PT8S`, `PT1M2.5S`, `P1DT2H`), in
/// seconds. Years and months have no fixed length and are refused.
pub fn duration(text: &str) -> Result<f64, String> {
    let invalid = || format!("{text:?} is not an xs:duration of days, hours, minutes and seconds");
    let body = text.strip_prefix('P').ok_or_else(invalid)?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    if (body.contains('T') && time.is_empty()) || body.is_empty() {
        return Err(invalid());
    }
    let mut seconds = 0.0;
    for (part, units) in [
        (date, &[('D', 86_400.0)][..]),
        (time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)]),
    ] {
        let mut rest = part;
        for &(designator, scale) in units {
            if let Some((number, after)) = rest.split_once(designator) {
                let fraction_allowed = designator == 'S';
                let valid = !number.is_empty()
                    && number
                        .chars()
                        .all(|c| c.is_ascii_digit() || (fraction_allowed && c == '.'));
                let value: f64 = number.parse().map_err(|_| invalid())?;
                if !valid {
                    return Err(invalid());
                }
                seconds += value * scale;
                rest = after;
            }
        }
        if !rest.is_empty() {
            return Err(invalid());
        }
    }
    Ok(seconds)
}

/// A SegmentTemplate URL with `$RepresentationID$`, `$Number$` or `$Number%0Nd$` and `$$`
/// replaced; any other identifier is refused.
pub fn expand(template: &str, id: &str, number: u64) -> String {
    let mut parts = template.split('$');
    let mut url = parts.next().unwrap_or_default().to_string();
    let parts: Vec<&str> = parts.collect();
    assert!(parts.len().is_multiple_of(2), "unbalanced $ in {template:?}");
    for pair in parts.chunks(2) {
        let (identifier, literal) = (pair[0], pair[1]);
        match identifier {
            "" => url.push('$'),
            "RepresentationID" => url.push_str(id),
            "Number" => url.push_str(&number.to_string()),
            _ => {
                let width = identifier
                    .strip_prefix("Number%0")
                    .and_then(|format| format.strip_suffix('d'))
                    .and_then(|width| width.parse::<usize>().ok())
                    .unwrap_or_else(|| panic!("unsupported ${identifier}$ in {template:?}"));
                url.push_str(&format!("{number:0width$}"));
            }
        }
        url.push_str(literal);
    }
    url
}

pub fn read_mpd(path: &Path) -> Mpd {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    parse_mpd(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MPD: &str = r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1M0.5S">
  <Period>
    <AdaptationSet contentType="audio">
      <Representation id="audio" bandwidth="128000">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
        <SegmentTemplate timescale="48000" media="$RepresentationID$/s$Number%05d$.m4s" startNumber="0">
          <SegmentTimeline><S t="100" d="10" r="2"/><S d="7"/><S t="200" d="5"/></SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>"#;

    #[test]
    fn mpd_is_parsed_and_its_timeline_expanded() {
        let mpd = parse_mpd(MPD).expect("a valid MPD");
        assert_eq!(mpd.attributes.get("type"), Some("static"));
        assert_eq!(mpd.attributes.seconds("mediaPresentationDuration"), 60.5);
        let representation = &mpd.adaptation_sets[0].representations[0];
        assert_eq!(representation.attributes.parse::<u64>("bandwidth"), 128_000);
        let channels = representation.audio_channel_configuration.as_ref().expect("channels");
        assert_eq!(channels.get("value"), Some("2"));
        let segments = representation.segment_template.segments();
        assert_eq!(segments, [(100, 10), (110, 10), (120, 10), (130, 7), (200, 5)]);
    }

    #[test]
    fn mpd_reader_is_strict() {
        let cases = [
            MPD.replace("urn:mpeg:dash:schema:mpd:2011", "urn:example"),
            MPD.replace("</Period>", "</Period><Period/>"),
            MPD.replace("<SegmentTimeline>", "<SegmentTimeline><SegmentBase/>"),
            MPD.replace(r#"<S d="7"/>"#, r#"<S d="7" n="4"/>"#),
            MPD.replace(r#"<S d="7"/>"#, r#"<S r="1"/>"#),
            MPD.replace(r#"r="2""#, r#"r="-1""#),
            MPD.replace("<AudioChannelConfiguration", "<AudioChannelConfig"),
            MPD.replace("</SegmentTemplate>", "</SegmentTemplate><SegmentTemplate/>"),
        ];
        for bad in cases {
            assert!(parse_mpd(&bad).is_err(), "accepted:\n{bad}");
        }
    }

    #[test]
    fn xs_durations() {
        assert_eq!(duration("PT8S"), Ok(8.0));
        assert_eq!(duration("PT5.016S"), Ok(5.016));
        assert_eq!(duration("P1DT1H1M1S"), Ok(90_061.0));
        assert_eq!(duration("PT0S"), Ok(0.0));
        for bad in ["8S", "PT", "P", "PT8", "P1Y", "PT1S2M", "PT-1S", "PT.S", "P1.5D"] {
            assert!(duration(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn template_urls_are_expanded() {
        let url = expand("$RepresentationID$/segment$Number%05d$.m4s", "360p", 7);
        assert_eq!(url, "360p/segment00007.m4s");
        assert_eq!(expand("a$$b$Number$", "x", 12), "a$b12");
    }
}
