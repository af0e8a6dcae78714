//! The probe encodes: every sampled picture, at each candidate rung's size, encoded by libx264 in
//! constant-quality mode at a few CRF values, the encodes decoded back at once and measured
//! against the pictures they were made from. Frames stream through: only the pictures an encoder
//! still holds in its lookahead are kept.
//!
//! Each window opens with a keyframe, as each segment of the real run does; but a window is a few
//! pictures long and a segment's GOP many, so the keyframes are tallied apart from the other
//! pictures and weighted as one picture in a GOP of the real run. Unweighted, a static title's
//! rate would be mostly keyframes, several times what the real run spends.

use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;

use ffmpeg::software::scaling;
use ffmpeg::{Packet, Rational, codec, decoder, encoder, format, frame, picture};
use ffmpeg_next as ffmpeg;

use super::choose::ProbePoint;
use super::sample::Sink;
use crate::error::{Error, Result};
use crate::input::source::Colour;
use crate::package::rate::{Bitrate, RateControl};
use crate::package::transcode::encoding::{self, VideoCodec, VideoEncoding};
use crate::package::transcode::{self, received};

/// The CRF values each rung is probed at: from near-transparent to visibly soft, so that the
/// quality targets of easy and hard titles alike fall inside the measured range.
pub const CRFS: [u32; 3] = [18, 26, 34];

/// One picture in `TOP_EVERY` is also upscaled to the top rung's size and compared there: the
/// comparison across rungs needs the level, not every frame, and upscaling costs.
const TOP_EVERY: u64 = 4;

/// The same x264 settings for every probe encode of a job.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSettings {
    /// Index into `encoding::PRESETS`.
    pub preset: usize,
    pub keyint: u32,
    pub frame_rate: Rational,
    /// Pictures per GOP in the real run: a segment's.
    pub gop: f64,
}

/// A picture at a rung's size, with the top rung's picture of the same instant when it is one
/// of those compared at the top size.
struct Reference {
    picture: frame::Video,
    top: Option<Rc<frame::Video>>,
}

/// The probes of every candidate rung, fed the sampled pictures.
pub struct Probes {
    rungs: Vec<RungProbe>,
    /// Pictures taken so far.
    taken: u64,
}

impl Probes {
    /// A probe per rung size, largest (the top rung) first.
    pub fn new(sizes: &[(u32, u32)], settings: ProbeSettings) -> Result<Probes> {
        let top = sizes.first().copied().unwrap_or_default();
        let rungs = sizes
            .iter()
            .map(|&size| RungProbe::new(size, top, settings))
            .collect::<Result<_>>()?;
        Ok(Probes { rungs, taken: 0 })
    }

    /// Flushes every encode and gives each rung's points, in the sizes' order.
    pub fn finish(self) -> Result<Vec<Vec<ProbePoint>>> {
        self.rungs.into_iter().map(RungProbe::finish).collect()
    }
}

impl Sink for Probes {
    fn take(&mut self, scaled: Vec<frame::Video>, opens_window: bool) -> Result<()> {
        let compared_at_top = self.taken.is_multiple_of(TOP_EVERY);
        self.taken += 1;
        let mut scaled = scaled.into_iter();
        let top = Rc::new(scaled.next().expect("a picture per rung"));
        let top_reference = compared_at_top.then(|| Rc::clone(&top));
        let copy = frame_copy(&top)?;
        self.rungs[0].take(copy, None, opens_window, self.taken)?;
        for (rung, picture) in self.rungs[1..].iter_mut().zip(scaled) {
            rung.take(picture, top_reference.clone(), opens_window, self.taken)?;
        }
        Ok(())
    }
}

/// A new reference to a picture's buffers: the top rung's picture is both encoded and kept as
/// the other rungs' top-size reference.
fn frame_copy(picture: &frame::Video) -> Result<frame::Video> {
    let mut copy = frame::Video::empty();
    transcode::add_reference(&mut copy, picture, "probe: sharing a picture")?;
    Ok(copy)
}

/// One rung's encodes, one per CRF, and the pictures they are still to be compared with.
struct RungProbe {
    encodes: Vec<ProbeEncode>,
    pending: VecDeque<Reference>,
    /// The index of `pending`'s first picture among those taken.
    first: u64,
}

impl RungProbe {
    fn new(size: (u32, u32), top: (u32, u32), settings: ProbeSettings) -> Result<RungProbe> {
        let encodes = CRFS
            .iter()
            .map(|&crf| ProbeEncode::new(size, top, crf, settings))
            .collect::<Result<_>>()?;
        Ok(RungProbe {
            encodes,
            pending: VecDeque::new(),
            first: 0,
        })
    }

    fn take(
        &mut self,
        mut picture: frame::Video,
        top: Option<Rc<frame::Video>>,
        opens_window: bool,
        pts: u64,
    ) -> Result<()> {
        // Each window is its own closed GOP, as each segment of the real run is.
        picture.set_kind(if opens_window {
            picture::Type::I
        } else {
            picture::Type::None
        });
        picture.set_pts(Some(pts as i64));
        for encode in &mut self.encodes {
            encode.send(Some(&picture))?;
        }
        self.pending.push_back(Reference { picture, top });
        self.compare()
    }

    /// Measures every picture decoded since the last call, and forgets the pictures every
    /// encode has measured.
    fn compare(&mut self) -> Result<()> {
        for encode in &mut self.encodes {
            encode.measure(&self.pending, self.first)?;
        }
        let done = self.encodes.iter().map(|e| e.measured).min().unwrap_or(0);
        while self.first < done {
            self.pending.pop_front();
            self.first += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<ProbePoint>> {
        for encode in &mut self.encodes {
            encode.send(None)?;
        }
        self.compare()?;
        Ok(self.encodes.iter().map(ProbeEncode::point).collect())
    }
}

/// One constant-quality encode of a rung, decoded back as it comes.
struct ProbeEncode {
    crf: u32,
    encoder: encoder::video::Encoder,
    decoder: decoder::Video,
    /// Decoded pictures not yet measured.
    decoded: VecDeque<frame::Video>,
    /// Upscales decoded pictures to the top rung's size, as players do.
    upscaler: Option<scaling::Context>,
    frame_rate: Rational,
    gop: f64,
    /// The timestamps of window-opening pictures sent and not yet seen coming out.
    openers: BTreeSet<i64>,
    measured: u64,
    /// The window-opening keyframes' tally, and the other pictures'.
    opening: Tally,
    rest: Tally,
}

/// Bits and errors of a kind of picture.
#[derive(Default)]
struct Tally {
    bits: u64,
    packets: u64,
    luma: Squared,
    luma_at_top: Squared,
}

/// Summed squared luma errors over a number of pixels.
#[derive(Default)]
struct Squared {
    errors: u64,
    pixels: u64,
}

impl Squared {
    fn add(&mut self, picture: &frame::Video, reference: &frame::Video) {
        self.errors += luma_squared_error(picture, reference);
        self.pixels += u64::from(picture.width()) * u64::from(picture.height());
    }

    fn mse(&self) -> Option<f64> {
        (self.pixels > 0).then(|| self.errors as f64 / self.pixels as f64)
    }
}

/// PSNR of a mean squared error, as ffmpeg's psnr filter averages equal-sized frames.
fn psnr(mse: f64) -> f64 {
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// The mean of a quantity over a GOP of `gop` pictures, of which the first is a keyframe, from
/// its means over keyframes and over the other pictures (either alone when the other is unknown).
fn over_gop(keyframe: Option<f64>, other: Option<f64>, gop: f64) -> Option<f64> {
    match (keyframe, other) {
        (Some(keyframe), Some(other)) => Some((keyframe + (gop - 1.0) * other) / gop),
        (keyframe, other) => keyframe.or(other),
    }
}

impl ProbeEncode {
    fn new((width, height): (u32, u32), top: (u32, u32), crf: u32, settings: ProbeSettings) -> Result<ProbeEncode> {
        let name = format!("probe {height}p crf {crf}");
        let spec = VideoEncoding {
            codec: VideoCodec::H264,
            preset: settings.preset,
            width,
            height,
            time_base: settings.frame_rate.invert(),
            frame_rate: settings.frame_rate,
            keyint: settings.keyint,
            // Unused in constant-quality mode.
            rate: RateControl {
                bitrate: Bitrate(0),
                maxrate: Bitrate(0),
                bufsize: Bitrate(0),
            },
            // One thread: x264's output then depends on nothing but its input, so the chosen
            // ladder is the same from run to run.
            threads: 1,
            // Measured here and dropped: what it declares does not matter.
            colour: Colour::default(),
        };
        let encoder = encoding::open_constant_quality(&spec, f64::from(crf), false, &name)?;
        let mut context = codec::context::Context::from_parameters(codec::Parameters::from(&encoder))
            .map_err(Error::ffmpeg(format!("{name}: reading the encoder's parameters")))?;
        context.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: 1,
            ..Default::default()
        });
        let decoder = context
            .decoder()
            .video()
            .map_err(Error::ffmpeg(format!("{name}: opening a decoder")))?;
        let upscaler = (top != (width, height))
            .then(|| {
                scaling::Context::get(
                    format::Pixel::YUV420P,
                    width,
                    height,
                    format::Pixel::YUV420P,
                    top.0,
                    top.1,
                    scaling::Flags::BICUBIC,
                )
                .map_err(Error::ffmpeg(format!("{name}: creating the upscaler")))
            })
            .transpose()?;
        Ok(ProbeEncode {
            crf,
            encoder,
            decoder,
            decoded: VecDeque::new(),
            upscaler,
            frame_rate: settings.frame_rate,
            gop: settings.gop.max(1.0),
            openers: BTreeSet::new(),
            measured: 0,
            opening: Tally::default(),
            rest: Tally::default(),
        })
    }

    /// Encodes a picture, or with `None` flushes the encoder, and decodes what it gives.
    fn send(&mut self, picture: Option<&frame::Video>) -> Result<()> {
        let crf = self.crf;
        let failed = |doing: &str| Error::ffmpeg(format!("probe crf {crf}: {doing}"));
        match picture {
            Some(picture) => {
                if picture.kind() == picture::Type::I {
                    self.openers.extend(picture.pts());
                }
                self.encoder.send_frame(picture).map_err(failed("encoding"))?
            }
            None => self.encoder.send_eof().map_err(failed("flushing"))?,
        }
        let mut packet = Packet::empty();
        while received(self.encoder.receive_packet(&mut packet)).map_err(failed("encoding"))? {
            let opens = packet.pts().is_some_and(|pts| self.openers.remove(&pts));
            let tally = if opens { &mut self.opening } else { &mut self.rest };
            tally.bits += 8 * packet.size() as u64;
            tally.packets += 1;
            self.decoder.send_packet(&packet).map_err(failed("decoding"))?;
            self.receive_decoded()?;
        }
        if picture.is_none() {
            self.decoder.send_eof().map_err(failed("decoding"))?;
            self.receive_decoded()?;
        }
        Ok(())
    }

    fn receive_decoded(&mut self) -> Result<()> {
        let mut picture = frame::Video::empty();
        while received(self.decoder.receive_frame(&mut picture))
            .map_err(Error::ffmpeg(format!("probe crf {}: decoding", self.crf)))?
        {
            self.decoded
                .push_back(std::mem::replace(&mut picture, frame::Video::empty()));
        }
        Ok(())
    }

    /// Compares the decoded pictures with their references; decoded pictures come out in
    /// presentation order, one per picture sent.
    fn measure(&mut self, pending: &VecDeque<Reference>, first: u64) -> Result<()> {
        while let Some(picture) = self.decoded.pop_front() {
            let reference = &pending[(self.measured - first) as usize];
            let tally = match reference.picture.kind() == picture::Type::I {
                true => &mut self.opening,
                false => &mut self.rest,
            };
            tally.luma.add(&picture, &reference.picture);
            match (&reference.top, &mut self.upscaler) {
                (Some(top), Some(upscaler)) => {
                    let mut upscaled = frame::Video::empty();
                    upscaler
                        .run(&picture, &mut upscaled)
                        .map_err(Error::ffmpeg(format!("probe crf {}: upscaling", self.crf)))?;
                    tally.luma_at_top.add(&upscaled, top);
                }
                (Some(_), None) => tally.luma_at_top.add(&picture, &reference.picture),
                _ => {}
            }
            self.measured += 1;
        }
        Ok(())
    }

    /// The rate and PSNR of a GOP of the real run's length.
    fn point(&self) -> ProbePoint {
        let (opening, rest) = (&self.opening, &self.rest);
        let bits_per_picture = |tally: &Tally| (tally.packets > 0).then(|| tally.bits as f64 / tally.packets as f64);
        let bits = over_gop(bits_per_picture(opening), bits_per_picture(rest), self.gop).unwrap_or(0.0);
        let mse = over_gop(opening.luma.mse(), rest.luma.mse(), self.gop).unwrap_or(f64::NAN);
        let mse_at_top = over_gop(opening.luma_at_top.mse(), rest.luma_at_top.mse(), self.gop).unwrap_or(mse);
        ProbePoint {
            crf: self.crf,
            bitrate: bits * f64::from(self.frame_rate),
            psnr: psnr(mse),
            psnr_at_top: psnr(mse_at_top),
        }
    }
}

/// The summed squared differences of two pictures' luma planes, of the same size.
fn luma_squared_error(picture: &frame::Video, reference: &frame::Video) -> u64 {
    let width = picture.width() as usize;
    let (a, a_stride) = (picture.data(0), picture.stride(0));
    let (b, b_stride) = (reference.data(0), reference.stride(0));
    (0..picture.height() as usize)
        .map(|row| {
            let a = &a[row * a_stride..][..width];
            let b = &b[row * b_stride..][..width];
            a.iter()
                .zip(b)
                .map(|(&x, &y)| u64::from(x.abs_diff(y)).pow(2))
                .sum::<u64>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(width: u32, height: u32, level: u8) -> frame::Video {
        let mut picture = frame::Video::new(format::Pixel::YUV420P, width, height);
        let stride = picture.stride(0);
        for row in 0..height as usize {
            picture.data_mut(0)[row * stride..][..width as usize].fill(level);
        }
        picture
    }

    #[test]
    fn psnr_of_a_uniform_error_is_the_textbook_figure() {
        // Every luma sample off by 4: MSE 16, PSNR 10·log10(65025/16) = 36.09 dB.
        let mut squared = Squared::default();
        squared.add(&gray(34, 18, 100), &gray(34, 18, 104));
        squared.add(&gray(34, 18, 50), &gray(34, 18, 46));
        assert_eq!(squared.errors, 2 * 16 * 34 * 18);
        let psnr = psnr(squared.mse().unwrap());
        assert!((psnr - 36.0906).abs() < 1e-3, "{psnr}");
    }

    #[test]
    fn a_keyframe_weighs_as_one_picture_of_a_gop() {
        // A 1000-bit keyframe and 100-bit others, in a GOP of 10: 190 bits a picture.
        assert_eq!(over_gop(Some(1000.0), Some(100.0), 10.0), Some(190.0));
        assert_eq!(over_gop(None, Some(100.0), 10.0), Some(100.0));
        assert_eq!(over_gop(Some(1000.0), None, 10.0), Some(1000.0));
        assert_eq!(over_gop(None, None, 10.0), None);
    }
}
