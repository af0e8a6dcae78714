#!/usr/bin/env bash
# Installs what is missing, packages a generated 720p sample as an HLS ladder, prints where it is.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --release --quiet
demo=target/demo
mkdir -p "$demo"
# The sample is made with the ffmpeg CLI (a test-pattern clip with a tone); stream-pack itself
# never runs ffmpeg.
if [ ! -s "$demo/sample.mp4" ]; then
  ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t 12 -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -ac 2 "$demo/sample.mp4.part.mp4"
  mv "$demo/sample.mp4.part.mp4" "$demo/sample.mp4"
fi
target/release/stream-pack hls "$demo/sample.mp4" -o "$demo/package" --reps 720,480 --force --progress none
echo "The package is in $(pwd)/$demo/package (play $(pwd)/$demo/package/master.m3u8)"
