// Plays stream-pack's packages in hls.js, dash.js and Shaka Player in headless Chromium.
//
// Every cell of the matrix is made by stream-pack in this run from a generated source, served
// from 127.0.0.1 and played by each player its format allows (page/check.js says what is
// checked). Broken cells are good packages with a segment deleted or a playlist pointing past
// the end: the run passes only if every good cell plays and every broken cell fails.
//
// Usage: node run.mjs [CELL…]   (all cells when none is named)
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { play } from './lib/play.mjs';
import { serve } from './lib/server.mjs';
import {
  SOURCE,
  buildStreamPack,
  declaredCodecs,
  makeSource,
  streamPack,
  targetDir,
  withSegmentPastEnd,
  withoutFile,
} from './lib/packages.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPOSITORY = path.resolve(HERE, '..', '..');
const LADDER = [360, 240, 144];
const SEGMENT = 2;
const LADDER_ARGS = ['--reps', LADDER.join(','), '--segment-duration', String(SEGMENT)];
const KEYS = 'hls-aes-rotation.keys';

// make(origin, work): stream-pack's arguments after the input, before -o.
const GOOD = [
  { name: 'hls-ts', make: () => ['hls', '--format', 'ts'], manifest: 'master.m3u8', players: ['hls.js', 'shaka'] },
  { name: 'hls-fmp4', make: () => ['hls', '--format', 'fmp4'], manifest: 'master.m3u8', players: ['hls.js', 'shaka'] },
  { name: 'dash', make: () => ['dash'], manifest: 'manifest.mpd', players: ['dash.js', 'shaka'] },
  { name: 'dash-hls', make: () => ['dash', '--hls'], manifest: 'master.m3u8', players: ['hls.js', 'shaka'] },
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
];

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

  const server = await serve({
    '/pkg/': work,
    '/lib/': path.join(HERE, 'node_modules'),
    '/page/': path.join(HERE, 'page'),
  });
  const browser = await chromium.launch(CHROMIUM);
  const outcomes = [];
  try {
    const binary = timed('build stream-pack', () => buildStreamPack(REPOSITORY));
    const source = timed('generate the source', () => makeSource(work));
    for (const cell of cells) {
      timed(`make ${cell.name}`, () => makePackage(cell, binary, source, server.origin, work));
    }
    for (const cell of cells) {
      for (const player of cell.players) {
        outcomes.push(await playCell(browser, server, work, cell, player));
      }
    }
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
  const all = [...GOOD, ...BROKEN];
  const unknown = wanted.filter((name) => !all.some((cell) => cell.name === name));
  if (unknown.length) throw new Error(`unknown cell ${unknown}; cells: ${all.map((cell) => cell.name).join(', ')}`);
  const named = wanted.length ? all.filter((cell) => wanted.includes(cell.name)) : all;
  // A broken cell is made from its good cell, which is then made (and played) too.
  const needed = new Set(named.flatMap((cell) => [cell.name, cell.from].filter(Boolean)));
  return all.filter((cell) => needed.has(cell.name));
}

function makePackage(cell, binary, source, origin, work) {
  const output = path.join(work, cell.name);
  if (cell.breakage) {
    cell.breakage(path.join(work, cell.from), output, cell.file);
  } else {
    const [command, ...options] = cell.make(origin, work);
    streamPack(binary, [command, source, ...options, ...LADDER_ARGS, '-o', output]);
  }
}

function manifestOf(cell) {
  return cell.manifest ?? GOOD.find((good) => good.name === cell.from).manifest;
}

async function playCell(browser, server, work, cell, player) {
  const manifest = manifestOf(cell);
  const expected = {
    heights: LADDER,
    duration: SOURCE.seconds,
    fps: SOURCE.fps,
    segment: SEGMENT,
    audio: true,
    codecs: declaredCodecs(path.join(work, cell.name, manifest)),
  };
  const firstRequest = server.requests.length;
  const started = Date.now();
  const result = await play(browser, server.origin, `${server.origin}/pkg/${cell.name}/${manifest}`, player, expected);
  const requests = server.requests.slice(firstRequest);
  result.failures.push(...serverFailures(requests, cell, work));
  const took = seconds(Date.now() - started);
  const { ok, verdict } = judge(cell, result);
  console.log(`${ok ? 'ok  ' : 'FAIL'}  ${cell.name} in ${player} (${took}): ${verdict}`);
  if (!ok && result.console?.length) console.log(`      page console:\n        ${result.console.join('\n        ')}`);
  return { cell: cell.name, player, ok };
}

// A good cell passes with no failure; a broken one passes when it fails naming the broken file.
function judge(cell, result) {
  const failures = result.failures.join('; ');
  if (result.harnessError) return { ok: false, verdict: `the harness itself failed: ${result.harnessError}` };
  if (!cell.breakage) {
    return failures
      ? { ok: false, verdict: `${failures}\n      measured: ${summary(result)}` }
      : { ok: true, verdict: summary(result) };
  }
  if (!failures) return { ok: false, verdict: `the broken package (${cell.file}) played without any failure` };
  return result.failures.some((failure) => failure.includes(cell.file))
    ? { ok: true, verdict: `the broken package failed as it must: ${failures}` }
    : { ok: false, verdict: `the broken package (${cell.file}) failed, but not because of it: ${failures}` };
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
  const { renditions, duration, played, audioBytesDecoded, audioCodec } = result.measures;
  const parts = renditions.map(
    (r) => `${r.height}p ${r.decoded} frames decoded in ${r.playSeconds.toFixed(1)} s, shown ${r.first.toFixed(2)}–${r.last.toFixed(2)} s`,
  );
  if (duration !== undefined) {
    parts.push(`played ${JSON.stringify(played)} of ${duration.toFixed(3)} s`, `audio ${audioCodec}, ${audioBytesDecoded} bytes decoded`);
  }
  if (result.tolerated.length) parts.push(`tolerated: ${result.tolerated.join('; ')}`);
  return parts.join('; ') || 'nothing';
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
