// Making the packages the players are given: a generated source, stream-pack runs, and the
// deliberate breakages of good packages.
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

// The source every cell is cut from: what `expected` in page/check.js is judged against.
export const SOURCE = { width: 640, height: 360, fps: 25, seconds: 8, sampleRate: 48000 };

// testsrc2 + a sine in stereo AAC, with a source GOP (37) off any segment grid so that
// stream-pack has to place its own keyframes.
export function makeSource(folder) {
  const file = path.join(folder, 'source.mp4');
  const { width, height, fps, seconds, sampleRate } = SOURCE;
  run('ffmpeg', [
    '-v', 'error', '-nostdin', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}:duration=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=${sampleRate}:duration=${seconds}`,
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', '37',
    '-c:a', 'aac', '-ac', '2', '-b:a', '96k',
    file,
  ]);
  return file;
}

// The source remuxed to MPEG-TS by libav, which starts its audio (with the AAC priming) one
// frame before its video, as broadcast captures do.
export function remuxToTs(source) {
  const file = source.replace(/\.mp4$/, '.ts');
  run('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-i', source, '-map', '0', '-c', 'copy', file]);
  return file;
}

// Cargo's target folder, where the binary is built and the packages are kept.
export function targetDir(repository) {
  return path.resolve(repository, process.env.CARGO_TARGET_DIR ?? 'target');
}

// Builds stream-pack (a no-op when the test run has built it already) and returns its path.
export function buildStreamPack(repository) {
  run('cargo', ['build', '--quiet', '--bin', 'stream-pack'], { cwd: repository });
  return path.join(targetDir(repository), 'debug', 'stream-pack');
}

export function streamPack(binary, args) {
  run(binary, [...args, '--progress', 'none']);
}

// A copy of a good package with one file deleted.
export function withoutFile(good, broken, file) {
  copy(good, broken);
  rmSync(path.join(broken, file));
}

// A copy of a good package whose media playlist names one more segment, `segment`, past the
// last one written (in the playlist's folder).
export function withSegmentPastEnd(good, broken, segment) {
  copy(good, broken);
  const file = path.join(broken, path.dirname(segment), 'index.m3u8');
  const text = readFileSync(file, 'utf8');
  if (!text.includes('#EXT-X-ENDLIST')) throw new Error(`${file} has no #EXT-X-ENDLIST`);
  writeFileSync(file, text.replace('#EXT-X-ENDLIST', `#EXTINF:2.000,\n${path.basename(segment)}\n#EXT-X-ENDLIST`));
}

// The codec strings a manifest declares (HLS CODECS attributes, DASH @codecs).
export function declaredCodecs(manifest) {
  const lists = [...readFileSync(manifest, 'utf8').matchAll(/codecs="([^"]+)"/gi)].map((match) => match[1]);
  return [...new Set(lists.flatMap((list) => list.split(',')))];
}

function copy(from, to) {
  rmSync(to, { recursive: true, force: true });
  cpSync(from, to, { recursive: true });
}

function run(program, args, options = {}) {
  try {
    execFileSync(program, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  } catch (error) {
    throw new Error(`${program} ${args.join(' ')} failed: ${error.stderr?.toString().trim() || error.message}`);
  }
}
