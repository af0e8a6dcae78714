//! Which encoders stream-pack drives and how: codec choice, presets, forced-keyframe and rate
//! control settings, checked opening. The pipeline in `transcode` only feeds them frames.

use ffmpeg::{ChannelLayout, Dictionary, Rational, codec, encoder};
use ffmpeg_next as ffmpeg;

use crate::error::{Error, Result};
use crate::input::source::{AudioInput, Colour};
use crate::package::rate::{Bitrate, RateControl};
use crate::package::segment::{Cuts, SegmentFormat};

/// Preset names, fastest first, as x264 and x265 name them; VP9 and AV1 map them to their speeds.
pub const PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// x264's own `rc-lookahead` at each of `PRESETS`.
const X264_PRESET_LOOKAHEAD: [usize; 10] = [0, 0, 10, 20, 30, 40, 50, 60, 60, 60];

/// The `rc-lookahead` stream-pack gives x264 for a picture of `pixels` at a preset: the preset's
/// own, but at most 20 frames for pictures larger than 720p up to `medium`. x264 keeps every
/// lookahead picture resident, so the large rungs hold most of a ladder's memory: on a six-rung
/// 1080p ladder, 20 frames on every rung took 845 MB to 590 MB but cost the small rungs up to
/// 0.11 dB, and on 720p a title with a still backdrop lost 0.32 dB (bench/RESULTS.md, "x264's
/// lookahead"). `slow` and slower keep theirs: asking for them is asking for quality over cost.
pub fn x264_lookahead(preset: usize, pixels: u32) -> usize {
    const LARGE: u32 = 1280 * 720;
    const MEDIUM: usize = 5;
    let own = X264_PRESET_LOOKAHEAD[preset];
    if pixels > LARGE && preset <= MEDIUM {
        own.min(20)
    } else {
        own
    }
}

/// The index of a preset name in `PRESETS`, or an error listing them.
pub fn preset_index(name: &str) -> Result<usize> {
    PRESETS
        .iter()
        .position(|p| *p == name)
        .ok_or_else(|| Error::InvalidOption {
            option: "encoder_preset",
            reason: format!("{name}: not a preset (one of {})", PRESETS.join(", ")),
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoCodec {
    #[default]
    H264,
    H265,
    Vp9,
    Av1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioCodec {
    #[default]
    Aac,
    Opus,
}

impl VideoCodec {
    /// MPEG-TS segments carry H.264 only here: HLS allows HEVC only in fMP4, and VP9/AV1 have no
    /// TS mapping players use.
    pub fn fits(self, format: SegmentFormat) -> bool {
        self == VideoCodec::H264 || format == SegmentFormat::Fmp4
    }

    /// The shortest picture side the encoder opens with (measured on Debian 12's builds:
    /// libx265 refuses under 16, SVT-AV1 under 64; libx264 and libvpx take 2).
    pub fn min_side(self) -> u32 {
        match self {
            VideoCodec::H264 | VideoCodec::Vp9 => 2,
            VideoCodec::H265 => 16,
            VideoCodec::Av1 => 64,
        }
    }

    /// Where this encoder's segments start. FFmpeg 5.1's libsvtav1 ignores forced keyframes, so
    /// AV1 keyframes come every `keyint` frames and each starts a segment.
    pub fn cuts(self) -> Cuts {
        match self {
            VideoCodec::Av1 => Cuts::EveryKeyframe,
            _ => Cuts::Keyframe,
        }
    }

    /// The keyframe interval, in frames, for segments of `seconds` at `frame_rate`. With forced
    /// keyframes, one more than a segment holds, so the encoder never adds one inside a segment;
    /// for AV1, the segment length itself, to the nearest frame.
    pub fn keyint(self, seconds: f64, frame_rate: Rational) -> u32 {
        let frames = seconds * f64::from(frame_rate);
        match self.cuts() {
            Cuts::EveryKeyframe => (frames.round() as u32).max(1),
            _ => frames.ceil() as u32 + 1,
        }
    }

    fn encoder(self) -> &'static str {
        match self {
            VideoCodec::H264 => "libx264",
            VideoCodec::H265 => "libx265",
            VideoCodec::Vp9 => "libvpx-vp9",
            VideoCodec::Av1 => "libsvtav1",
        }
    }
}

impl AudioCodec {
    /// MPEG-TS segments carry AAC only (Opus in TS is not played by HLS clients).
    pub fn fits(self, format: SegmentFormat) -> bool {
        self == AudioCodec::Aac || format == SegmentFormat::Fmp4
    }

    fn encoder(self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Opus => "libopus",
        }
    }
}

named!(VideoCodec, "video codec", VideoCodec::H264 => "h264", VideoCodec::H265 => "h265", VideoCodec::Vp9 => "vp9", VideoCodec::Av1 => "av1");
named!(AudioCodec, "audio codec", AudioCodec::Aac => "aac", AudioCodec::Opus => "opus");

/// What one rung's encoder is asked for.
pub struct VideoEncoding {
    pub codec: VideoCodec,
    pub preset: usize,
    pub width: u32,
    pub height: u32,
    pub time_base: Rational,
    pub frame_rate: Rational,
    /// Frames after which the encoder may place a keyframe of its own.
    pub keyint: u32,
    pub rate: RateControl,
    /// Threads of the encoder's own; 0 lets the encoder choose.
    pub threads: usize,
    /// What the stream declares of its colours: the source's.
    pub colour: Colour,
}

impl VideoEncoding {
    /// Options that make the encoder cut where told (forced keyframes, closed GOPs, no scene-cut
    /// keyframes) at the given speed and rate.
    fn options(&self) -> Dictionary<'static> {
        let mut options = self.cut_options();
        options.set("b", &self.rate.bitrate.0.to_string());
        if self.codec != VideoCodec::Av1 {
            options.set("maxrate", &self.rate.maxrate.0.to_string());
            options.set("bufsize", &self.rate.bufsize.0.to_string());
        }
        options
    }

    /// The options of `options` but the rate control.
    fn cut_options(&self) -> Dictionary<'static> {
        let (preset, keyint) = (self.preset, self.keyint);
        let mut options = Dictionary::new();
        let mut set = |key: &str, value: String| options.set(key, &value);
        match self.codec {
            VideoCodec::H264 => {
                set("preset", PRESETS[preset].into());
                set("forced-idr", "1".into());
                let lookahead = x264_lookahead(preset, self.width * self.height);
                set(
                    "x264-params",
                    format!("keyint={keyint}:scenecut=0:open-gop=0:rc-lookahead={lookahead}"),
                );
            }
            VideoCodec::H265 => {
                set("preset", PRESETS[preset].into());
                set("forced-idr", "1".into());
                set(
                    "x265-params",
                    format!("keyint={keyint}:scenecut=0:open-gop=0:log-level=error"),
                );
            }
            VideoCodec::Vp9 => {
                // libvpx's good-quality speeds run 0 (slowest) to 5.
                set("deadline", "good".into());
                set("cpu-used", [5, 5, 5, 4, 4, 3, 2, 1, 0, 0][preset].to_string());
                set("row-mt", "1".into());
            }
            VideoCodec::Av1 => {
                // SVT-AV1 presets run 13 (fastest) to 0.
                set("preset", [13, 12, 11, 10, 9, 8, 6, 4, 2, 0][preset].to_string());
                // Closed GOPs (key frames, not CRA), no scene-change keyframes; the interval is
                // the context's gop size, which the wrapper passes on.
                set("svtav1-params", "irefresh-type=2:scd=0".into());
            }
        }
        options
    }
}

pub fn open_video(spec: &VideoEncoding, name: &str) -> Result<encoder::video::Encoder> {
    let options = spec.options();
    open_video_with(spec, name, options)
}

/// The encoder `open_video` opens, in constant-quality mode at `crf` instead of at `spec.rate`'s
/// average; `capped`, under its maxrate and bufsize. libx264 and libx265 only.
pub fn open_constant_quality(
    spec: &VideoEncoding,
    crf: f64,
    capped: bool,
    name: &str,
) -> Result<encoder::video::Encoder> {
    let mut options = spec.cut_options();
    options.set("crf", &format!("{crf:.2}"));
    if capped {
        options.set("maxrate", &spec.rate.maxrate.0.to_string());
        options.set("bufsize", &spec.rate.bufsize.0.to_string());
    }
    open_video_with(spec, name, options)
}

fn open_video_with(spec: &VideoEncoding, name: &str, options: Dictionary) -> Result<encoder::video::Encoder> {
    let codec = find_encoder(spec.codec.encoder(), name)?;
    let mut video = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(Error::ffmpeg(format!("{name}: creating the {} encoder", codec.name())))?;
    video.set_width(spec.width);
    video.set_height(spec.height);
    video.set_format(ffmpeg::format::Pixel::YUV420P);
    video.set_aspect_ratio(Rational::new(1, 1));
    video.set_color_primaries(spec.colour.primaries);
    video.set_color_transfer_characteristic(spec.colour.transfer);
    video.set_colorspace(spec.colour.matrix);
    video.set_time_base(spec.time_base);
    video.set_frame_rate(Some(spec.frame_rate));
    video.set_gop(spec.keyint);
    if spec.threads > 0 {
        video.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: spec.threads,
            ..Default::default()
        });
    }
    // Parameter sets in extradata, for TS too (its muxer puts them before every keyframe): x264
    // counts headers repeated in the stream as the frames' bits, and its rate control then spends
    // less on the pictures (measured: 144p at 95k lost 0.5 dB in TS against the same rung in fMP4).
    video.set_flags(codec::Flags::GLOBAL_HEADER);
    open_checked(&mut video, codec, options, name)?;
    Ok(encoder::video::Encoder(video))
}

/// An audio rendition's sample rate and channel count: the source's rate up to 48 kHz (Opus:
/// always 48 kHz); a `surround` rendition 5.1, any other mono kept mono and anything wider mixed
/// to stereo.
pub fn audio_output(codec: AudioCodec, input: &AudioInput, surround: bool) -> (u32, u16) {
    let rate = match codec {
        AudioCodec::Aac => input.sample_rate.min(48_000),
        AudioCodec::Opus => 48_000,
    };
    let channels = match surround {
        true => SURROUND_LAYOUT.channels() as u16,
        false => input.channels.min(2),
    };
    (rate, channels)
}

/// A 5.1 rendition's layout: FFmpeg's "5.1" (back surrounds), AAC's channel configuration 6;
/// a source in 5.1(side) is mapped to it by the resampler.
const SURROUND_LAYOUT: ChannelLayout = ChannelLayout::_5POINT1_BACK;

/// The audio encoder as `audio_output` says, with its configuration (AAC's AudioSpecificConfig)
/// in extradata so the codec string can be read from it. `bitrate` is a stereo rendition's:
/// a 5.1 one gets three times as much, the usual share for its six channels.
pub fn open_audio(
    codec_choice: AudioCodec,
    input: &AudioInput,
    bitrate: Bitrate,
    surround: bool,
) -> Result<encoder::audio::Encoder> {
    let codec = find_encoder(codec_choice.encoder(), "audio")?;
    let mut audio = codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .map_err(Error::ffmpeg(format!("audio: creating the {} encoder", codec.name())))?;
    let (rate, channels) = audio_output(codec_choice, input, surround);
    let layout = match channels {
        1 => ChannelLayout::MONO,
        2 => ChannelLayout::STEREO,
        _ => SURROUND_LAYOUT,
    };
    audio.set_rate(rate as i32);
    audio.set_channel_layout(layout);
    audio.set_channels(layout.channels());
    audio.set_format(ffmpeg::format::Sample::F32(match codec_choice {
        AudioCodec::Aac => ffmpeg::format::sample::Type::Planar,
        AudioCodec::Opus => ffmpeg::format::sample::Type::Packed,
    }));
    audio.set_bit_rate(bitrate.0 as usize * if surround { 3 } else { 1 });
    audio.set_time_base(Rational::new(1, rate as i32));
    audio.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut options = Dictionary::new();
    if codec_choice == AudioCodec::Aac {
        options.set("profile", "aac_low");
    }
    open_checked(&mut audio, codec, options, "audio")?;
    Ok(encoder::audio::Encoder(audio))
}

/// The encoder called `name` for `stream` (a rendition's name, or `audio`).
fn find_encoder(name: &str, stream: &str) -> Result<codec::codec::Codec> {
    encoder::find_by_name(name).ok_or_else(|| Error::Codec {
        stream: stream.to_owned(),
        reason: format!("this FFmpeg has no {name} encoder (install a build with {name})"),
    })
}

/// Opens an encoder and fails if it ignored any option: libav drops unknown options silently.
fn open_checked(
    context: &mut codec::Context,
    codec: codec::codec::Codec,
    options: Dictionary,
    what: &str,
) -> Result<()> {
    // SAFETY: the context was allocated for `codec`; avcodec_open2 takes the dictionary and gives
    // back the entries it did not use, which `own` frees.
    let unused = unsafe {
        let mut raw = options.disown();
        let status = ffmpeg::ffi::avcodec_open2(context.as_mut_ptr(), codec.as_ptr(), &mut raw);
        let unused = Dictionary::own(raw);
        if status < 0 {
            return Err(Error::Codec {
                stream: what.to_owned(),
                reason: format!("opening the {} encoder: {}", codec.name(), ffmpeg::Error::from(status)),
            });
        }
        unused
    };
    if let Some((key, value)) = unused.iter().next() {
        return Err(Error::Codec {
            stream: what.to_owned(),
            reason: format!("the {} encoder does not accept option {key}={value}", codec.name()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names_round_trip_and_bad_names_list_the_choices() {
        for codec in [VideoCodec::H264, VideoCodec::H265, VideoCodec::Vp9, VideoCodec::Av1] {
            assert_eq!(codec.to_string().parse::<VideoCodec>(), Ok(codec));
        }
        assert_eq!("opus".parse::<AudioCodec>(), Ok(AudioCodec::Opus));
        let err = "mpeg2".parse::<VideoCodec>().unwrap_err();
        assert!(err.contains("h264, h265, vp9, av1"), "{err}");
    }

    #[test]
    fn only_h264_and_aac_go_in_ts() {
        assert!(VideoCodec::H264.fits(SegmentFormat::Ts));
        for codec in [VideoCodec::H265, VideoCodec::Vp9, VideoCodec::Av1] {
            assert!(!codec.fits(SegmentFormat::Ts));
            assert!(codec.fits(SegmentFormat::Fmp4));
        }
        assert!(!AudioCodec::Opus.fits(SegmentFormat::Ts));
        assert!(AudioCodec::Opus.fits(SegmentFormat::Fmp4));
    }

    #[test]
    fn x264_looks_ahead_at_most_20_frames_on_large_pictures_up_to_medium() {
        let (hd, full_hd) = (1280 * 720, 1920 * 1080);
        let medium = preset_index("medium").unwrap();
        assert_eq!(x264_lookahead(medium, full_hd), 20);
        assert_eq!(x264_lookahead(medium, hd + 1), 20);
        assert_eq!(x264_lookahead(medium, hd), 40);
        assert_eq!(x264_lookahead(preset_index("veryfast").unwrap(), full_hd), 10);
        assert_eq!(x264_lookahead(preset_index("slow").unwrap(), full_hd), 50);
    }

    #[test]
    fn presets_are_checked() {
        assert_eq!(preset_index("medium").unwrap(), 5);
        assert!(preset_index("warp").is_err());
    }
}
