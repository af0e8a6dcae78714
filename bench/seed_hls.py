"""Packages SRC as HLS with python-ffmpeg-video-streaming 0.1.16, used as its README shows.

    seed_hls.py SRC OUT_DIR AUDIO_KBPS WxH@VIDEO_KBPS [WxH@VIDEO_KBPS ...]

Formats.h264() (libx264 at x264's default preset, medium; the library's own bf 1, keyint_min 25,
g 250, sc_threshold 40), hls_time 10, one explicit Representation per rung. The library takes
bitrates in bits and writes them as kbit/s after dividing by 1024, so `k * 1024` gives `-b:v {k}k`.
The master playlist is OUT_DIR/index.m3u8, the variants OUT_DIR/index_{height}p.m3u8.
"""

import sys

import ffmpeg_streaming
from ffmpeg_streaming import Bitrate, Formats, Representation, Size


def representation(spec: str, audio_k: int) -> Representation:
    size, video_k = spec.split("@")
    width, height = (int(n) for n in size.split("x"))
    return Representation(Size(width, height), Bitrate(int(video_k) * 1024, audio_k * 1024))


def main() -> None:
    src, out_dir, audio_k, *rungs = sys.argv[1:]
    hls = ffmpeg_streaming.input(src).hls(Formats.h264(), hls_time=10)
    hls.representations(*(representation(rung, int(audio_k)) for rung in rungs))
    hls.output(f"{out_dir}/index.m3u8")


if __name__ == "__main__":
    main()
