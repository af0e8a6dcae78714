// Live presentations for the players: stream-pack run in the background on an endless capture,
// stopped with SIGINT once the players have seen enough, and what it must leave behind.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { SOURCE } from './packages.mjs';

// testsrc2 and a tone, made by libavdevice's lavfi inside stream-pack, at their own pace and without end.
export const CAPTURE =
  `lavfi:testsrc2=size=${SOURCE.width}x${SOURCE.height}:rate=${SOURCE.fps}[out0];` +
  `sine=frequency=440:sample_rate=${SOURCE.sampleRate}[out1]`;

// Starts stream-pack with `args` and returns { stop, exited }: `exited` resolves to
// { code, signal, stderr } whenever it ends, `stop()` ends it with SIGINT (Ctrl-C) and awaits that.
export function startLive(binary, args) {
  const child = spawn(binary, [...args, '--progress', 'none'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise((resolve) => {
    child.on('error', (error) => resolve({ code: null, signal: null, stderr: String(error) }));
    child.on('close', (code, signal) => resolve({ code, signal, stderr: stderr.trim() }));
  });
  return {
    exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      return exited;
    },
  };
}

// Resolves once `condition()` holds, polling; rejects after `seconds` or when the presentation
// ends first, with `what` (text or a function giving it) in the message.
export async function until(condition, what, presentation, seconds = 30) {
  let ended = null;
  presentation.exited.then((exit) => {
    ended = exit;
  });
  const deadline = Date.now() + seconds * 1000;
  while (!condition()) {
    const waited = () => (typeof what === 'function' ? what() : what);
    if (ended) throw new Error(`stream-pack ended (exit ${ended.code}) before ${waited()}: ${ended.stderr}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${waited()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// The media playlists a master playlist names (variant streams and EXT-X-MEDIA renditions), as
// paths relative to its folder.
function mediaPlaylists(master) {
  const text = readFileSync(master, 'utf8');
  const variants = text.split('\n').filter((line) => line.trim() && !line.startsWith('#'));
  const renditions = [...text.matchAll(/^#EXT-X-MEDIA:.*URI="([^"]+)"/gm)].map((match) => match[1]);
  return [...renditions, ...variants.map((line) => line.trim())];
}

// The segment URIs of a media playlist's text.
function segmentsOf(text) {
  return text
    .split('\n')
    .filter((line) => line.trim() && !line.startsWith('#'))
    .map((line) => line.trim());
}

// How many segments the manifest lists now in its shortest rendition (0 before it is written).
export function listedSegments(folder, manifest) {
  const file = path.join(folder, manifest);
  if (!existsSync(file)) return 0;
  const text = readFileSync(file, 'utf8');
  if (manifest.endsWith('.mpd')) {
    // Each <S> is 1 + @r segments.
    const count = (timeline) =>
      [...timeline.matchAll(/<S\b([^>]*)\/>/g)]
        .map(([, attributes]) => 1 + Number(/\sr="(\d+)"/.exec(attributes)?.[1] ?? 0))
        .reduce((sum, segments) => sum + segments, 0);
    const timelines = [...text.matchAll(/<SegmentTimeline>(.*?)<\/SegmentTimeline>/gs)].map(([, timeline]) => count(timeline));
    return timelines.length ? Math.min(...timelines) : 0;
  }
  return Math.min(
    ...mediaPlaylists(file).map((playlist) => {
      const media = path.join(folder, playlist);
      return existsSync(media) ? segmentsOf(readFileSync(media, 'utf8')).length : 0;
    }),
  );
}

// What is wrong with the manifest a finished live presentation left: every HLS media playlist
// must end with ENDLIST, a DASH MPD must be static.
export function unclosedManifests(folder, manifest) {
  const file = path.join(folder, manifest);
  if (!existsSync(file)) return [`${file} is missing`];
  if (manifest.endsWith('.mpd')) {
    const type = /<MPD[^>]*\stype="([^"]+)"/.exec(readFileSync(file, 'utf8'))?.[1];
    return type === 'static' ? [] : [`${file} has type="${type}", not static`];
  }
  return mediaPlaylists(file)
    .filter((playlist) => !readFileSync(path.join(folder, playlist), 'utf8').trimEnd().endsWith('#EXT-X-ENDLIST'))
    .map((playlist) => `${path.join(folder, playlist)} does not end with #EXT-X-ENDLIST`);
}

// A copy of a running presentation as it is now, which never changes again: a live presentation
// whose source stalled. The manifests are copied first, then the media: stream-pack keeps a
// segment one target duration after it left the manifests, so every segment they name is still
// there, and one deleted meanwhile was named by none of them.
export function frozenCopy(live, frozen) {
  const files = readdirSync(live, { recursive: true }).filter((file) => statSync(path.join(live, file)).isFile());
  const manifest = (file) => /\.(m3u8|mpd)$/.test(file);
  for (const file of [...files.filter(manifest), ...files.filter((file) => !manifest(file))]) {
    mkdirSync(path.join(frozen, path.dirname(file)), { recursive: true });
    try {
      copyFileSync(path.join(live, file), path.join(frozen, file));
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
    }
  }
}
