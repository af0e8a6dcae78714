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

// A title with tracks: video, three audio streams told apart by their tones and tags, a forced
// ASS subtitle stream of its own, and two subtitle sidecars (one in Japanese script) written
// beside it. What `expected.tracks` in page/check.js is judged against; `folder` is where
// stream-pack puts each audio rendition.
export const TITLE = {
  width: 320,
  height: 180,
  audio: [
    { frequency: 440, tags: { language: 'eng' }, disposition: 'default', language: 'en', name: 'English', default: true, folder: 'audio-en' },
    { frequency: 660, tags: { language: 'jpn' }, disposition: '0', language: 'ja', name: 'Japanese', default: false, folder: 'audio-ja' },
    {
      frequency: 880,
      tags: { language: 'eng', title: "Director's commentary" },
      disposition: 'comment',
      language: 'en',
      name: "Director's commentary",
      default: false,
      folder: 'audio-en-2',
    },
  ],
  // `option` is what follows the file in --subtitles; a sidecar given no name is named after its
  // language, in English, as every other rendition is. `muxed` ones are streams of the title,
  // with their tags and disposition, and their ASS override codes (top placement, italics) must
  // not reach the cue text. A cue spanning a segment boundary (the second English one at 4 s,
  // the French one at 6 s) is in two subtitle segments and must still be one cue to the player.
  subtitles: [
    {
      file: 'tracks-fr.ass',
      muxed: { tags: { language: 'fre', title: 'Panneaux' }, disposition: 'forced' },
      language: 'fr',
      name: 'Panneaux',
      default: false,
      forced: true,
      cues: [
        { start: 0.4, end: 1.2, text: 'Gare du Nord', ass: '{\\an8}Gare du Nord' },
        { start: 5.6, end: 6.5, text: 'Défense de fumer', ass: '{\\i1}Défense de fumer{\\i0}' },
      ],
    },
    {
      file: 'tracks-en.srt',
      option: 'en:English',
      language: 'en',
      name: 'English',
      default: false,
      forced: false,
      cues: [
        { start: 1.0, end: 2.5, text: 'Hello from the start' },
        { start: 3.6, end: 4.4, text: 'Across a segment boundary' },
        { start: 6.2, end: 7.3, text: 'The last words' },
      ],
    },
    {
      file: 'tracks-ja.srt',
      option: 'ja',
      language: 'ja',
      name: 'Japanese',
      default: false,
      forced: false,
      cues: [
        { start: 1.5, end: 3.0, text: 'こんにちは、世界' },
        { start: 5.0, end: 6.1, text: 'さようなら' },
      ],
    },
  ],
};

// TITLE as a Matroska file (which keeps each stream's language, title and disposition) and its
// SubRip sidecars, all in `folder` (with the ASS scripts it muxes); returns the title's path.
export function makeTitle(folder) {
  const file = path.join(folder, 'title.mkv');
  const { width, height, audio, subtitles } = TITLE;
  const { fps, seconds, sampleRate } = SOURCE;
  const muxed = subtitles.filter((track) => track.muxed);
  for (const track of muxed) writeFileSync(path.join(folder, track.file), assScript(track.cues));
  const tones = audio.flatMap(({ frequency }) => [
    '-f', 'lavfi', '-i', `sine=frequency=${frequency}:sample_rate=${sampleRate}:duration=${seconds}`,
  ]);
  const inputs = 1 + audio.length + muxed.length;
  run('ffmpeg', [
    '-v', 'error', '-nostdin', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}:duration=${seconds}`,
    ...tones,
    ...muxed.flatMap((track) => ['-i', path.join(folder, track.file)]),
    ...Array.from({ length: inputs }, (_, index) => ['-map', String(index)]).flat(),
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', '37',
    '-c:a', 'aac', '-ac', '2', '-b:a', '64k',
    '-c:s', 'copy',
    ...streamTags('a', audio),
    ...streamTags('s', muxed.map((track) => track.muxed)),
    file,
  ]);
  for (const track of subtitles.filter((track) => !track.muxed)) {
    writeFileSync(path.join(folder, track.file), subRip(track.cues));
  }
  return file;
}

// FFmpeg's options giving each stream of a kind ('a', 's') its tags and disposition.
function streamTags(kind, streams) {
  return streams.flatMap(({ tags, disposition }, index) => [
    ...Object.entries(tags).flatMap(([key, value]) => [`-metadata:s:${kind}:${index}`, `${key}=${value}`]),
    `-disposition:${kind}:${index}`, disposition,
  ]);
}

// stream-pack's --subtitles options for TITLE's sidecars in `folder`.
export function subtitleOptions(folder) {
  return TITLE.subtitles
    .filter((track) => !track.muxed)
    .flatMap((track) => ['--subtitles', `${path.join(folder, track.file)}:${track.option}`]);
}

// [h, m, s, fraction] of `seconds`, the fraction in `digits` decimal places.
function clock(seconds, digits) {
  const units = Math.round(seconds * 10 ** digits);
  const fraction = units % 10 ** digits;
  const whole = Math.floor(units / 10 ** digits);
  return [Math.floor(whole / 3600), Math.floor(whole / 60) % 60, whole % 60, fraction];
}

function subRip(cues) {
  const time = (seconds) => {
    const [h, m, s, ms] = clock(seconds, 3);
    return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)},${pad(ms, 3)}`;
  };
  return cues.map((cue, index) => `${index + 1}\n${time(cue.start)} --> ${time(cue.end)}\n${cue.text}\n`).join('\n');
}

// An ASS script of the cues' `ass` texts, at the title's resolution.
function assScript(cues) {
  const time = (seconds) => {
    const [h, m, s, cs] = clock(seconds, 2);
    return `${h}:${pad(m, 2)}:${pad(s, 2)}.${pad(cs, 2)}`;
  };
  return [
    '[Script Info]',
    'ScriptType: v4.00+',
    `PlayResX: ${TITLE.width}`,
    `PlayResY: ${TITLE.height}`,
    '',
    '[V4+ Styles]',
    'Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, ' +
      'Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, ' +
      'MarginR, MarginV, Encoding',
    'Style: Default,Arial,16,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1',
    '',
    '[Events]',
    'Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text',
    ...cues.map((cue) => `Dialogue: 0,${time(cue.start)},${time(cue.end)},Default,,0,0,0,,${cue.ass}`),
    '',
  ].join('\n');
}

function pad(number, digits) {
  return String(number).padStart(digits, '0');
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

// The video heights a manifest lists (HLS RESOLUTION, DASH Representation height), tallest first.
export function declaredHeights(manifest) {
  const text = readFileSync(manifest, 'utf8');
  const found = [...text.matchAll(/RESOLUTION=\d+x(\d+)|<Representation[^>]*\sheight="(\d+)"/g)].map((match) => Number(match[1] ?? match[2]));
  return [...new Set(found)].sort((a, b) => b - a);
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
