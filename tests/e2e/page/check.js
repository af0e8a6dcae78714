// Runs in Chromium. window.check(player, url, expected) plays one package in one player and
// returns what it measured; window.checkLive does the same for a live presentation. Neither
// knows how the package was made.
//
// expected: { heights: [360, 240], duration: seconds, fps, segment: seconds, audio: bool,
//            codecs: ['avc1.64001E', …] }; checkLive needs no duration but observe: seconds.
// result:   { failures: [text], playerErrors: [text], tolerated: [text], harnessError, measures }
'use strict';

// Fast enough to keep the run short. Chromium mutes audio above 4× but still decodes it.
const RATE = 8;
// Allowed slack in seconds at the start and end of the presentation: a few frames, and the
// composition delay of a first B-frame GOP in MPEG-TS.
const EDGE = 0.25;
// hls.js errors that say nothing against the package:
// - stall nudges are how hls.js recovers from a short underrun;
// - hls.js 1.7's new append-progress check fires on the first TS fragment of a freshly created
//   SourceBuffer although the fragment is buffered whole; FFmpeg's own `-f hls` output gets the
//   same, and false positives of that check are being fixed upstream one by one. The frame
//   counts and played ranges below still judge what was really buffered and played. That first
//   fragment is the first hls.js loads of its type (main, audio): sn 0 in VOD, wherever it
//   joins a live presentation.
// - the load of a subtitle segment is aborted when the check chooses another subtitle track;
// - joining a live presentation mid-window, hls.js puts the playhead at the first fragment's
//   start as the playlist gives it, then skips to where its media is buffered from, a rounding
//   error (1 µs seen) or a composition delay later. A hole anywhere else is not tolerated, and
//   the frame timeline judges what was skipped.
function toleratedByHls(data, firstLoaded) {
  if (data.fatal) return false;
  switch (data.details) {
    case 'bufferStalledError':
    case 'bufferNudgeOnStall':
      return true;
    case 'bufferAppendNoProgress':
      return data.frag?.sn === firstLoaded[data.frag?.type] && data.frag?.url.endsWith('.ts');
    case 'bufferSeekOverHole':
      return data.frag?.sn === firstLoaded[data.frag?.type];
    // A subtitle segment still loading when the check chooses another subtitle track.
    case 'aborted':
      return data.frag?.type === 'subtitle';
    default:
      return false;
  }
}

class PlaybackFailure extends Error {}

const adapters = {
  'hls.js'(video, report, options) {
    const hls = new Hls(options.clearKeys ? clearKeyLicence(options.clearKeys) : {});
    let audioCodec = null;
    const firstLoaded = {};
    hls.on(Hls.Events.FRAG_LOADING, (_, { frag }) => {
      firstLoaded[frag.type] ??= frag.sn;
    });
    hls.on(Hls.Events.ERROR, (_, data) => report(describeHls(data), toleratedByHls(data, firstLoaded)));
    hls.on(Hls.Events.BUFFER_CODECS, (_, data) => {
      audioCodec = data.audio?.codec ?? audioCodec;
    });
    return {
      async load(url) {
        const parsed = new Promise((resolve) => hls.once(Hls.Events.MANIFEST_PARSED, resolve));
        hls.loadSource(url);
        hls.attachMedia(video);
        await parsed;
      },
      renditions: () => hls.levels.map((level, index) => ({ height: level.height, index })),
      // Setting currentLevel switches at once, even to the level playing: the buffer is flushed
      // and refilled from the level.
      force: (rendition) => {
        hls.currentLevel = rendition.index;
        return true;
      },
      audioCodec: () => audioCodec,
      isLive: () => Boolean(hls.levels[hls.currentLevel]?.details?.live),
      latency: () => hls.latency,
      audioTracks: () =>
        hls.audioTracks.map((track, index) => ({
          language: track.lang,
          name: track.name,
          default: track.default,
          active: hls.audioTrack === index,
          index,
        })),
      selectAudio: (track) => {
        hls.audioTrack = track.index;
      },
      textTracks: () =>
        hls.subtitleTracks.map((track, index) => ({
          language: track.lang,
          name: track.name,
          default: track.default,
          forced: Boolean(track.forced),
          index,
        })),
      selectText: (track) => {
        hls.subtitleDisplay = true;
        hls.subtitleTrack = track.index;
      },
    };
  },

  'dash.js'(video, report, options) {
    const player = dashjs.MediaPlayer().create();
    if (options.clearKeys) {
      const clearkeys = Object.fromEntries(Object.entries(options.clearKeys).map(([kid, key]) => [base64url(kid), base64url(key)]));
      player.setProtectionData({ 'org.w3.clearkey': { clearkeys } });
    }
    const events = dashjs.MediaPlayer.events;
    player.updateSettings({
      debug: { logLevel: dashjs.Debug.LOG_LEVEL_NONE },
      streaming: { abr: { autoSwitchBitrate: { video: false } } },
    });
    player.on(events.ERROR, (event) => report(`dash.js error ${event.error?.code}: ${event.error?.message}`));
    player.on(events.PLAYBACK_ERROR, (event) => report(`dash.js playback error: ${event.error?.message ?? event.error}`));
    return {
      async load(url) {
        const initialized = new Promise((resolve) => player.on(events.STREAM_INITIALIZED, resolve));
        player.initialize(video, url, false);
        await initialized;

      },
      renditions: () => player.getRepresentationsByType('video').map((rep) => ({ height: rep.height, id: rep.id })),
      // forceReplace: drop what is buffered of the old representation.
      force: (rendition) => {
        const switches = player.getCurrentRepresentationForType('video')?.id !== rendition.id;
        player.setRepresentationForTypeById('video', rendition.id, true);
        return switches;
      },
      audioCodec: () => player.getCurrentTrackFor('audio')?.codec ?? null,
      isLive: () => player.isDynamic(),
      latency: () => player.getCurrentLiveLatency(),
      // dash.js has no default flag of its own: the Role main is what makes a track the default.
      audioTracks: () => {
        const current = player.getCurrentTrackFor('audio');
        return player.getTracksFor('audio').map((info) => ({ ...dashTrack(info), active: info.id === current?.id, info }));
      },
      selectAudio: (track) => player.setCurrentTrack(track.info),
      // dash.js has no forced flag either: Role forced-subtitle is what it goes by (it never shows
      // such a track first, and shows the one in the audio's language when text is turned off).
      textTracks: () =>
        player
          .getTracksFor('text')
          .map((info, index) => ({ ...dashTrack(info), forced: hasRole(info, 'forced-subtitle'), index })),
      // By its place among the text tracks. dash.js 5.2 shows the first text track from the load
      // whatever the MPD says (DASH has no flag for a subtitle track to show or not), and a text
      // track turned off (enableText(false), or the setting streaming.text.defaultEnabled)
      // loses its cues for good: the check lets it show one before any is chosen.
      selectText: (track) => player.setTextTrack(track.index),
      showsTextFromTheLoad: true,
      // dash.js 5 copies a track's cues into the video element's text track when the playhead
      // moves (timeupdate, seeked): the cues of a segment that arrives after a seek, paused, wait
      // for playback. The check plays on from the cue's middle while it waits, as a viewer would.
      showsCuesWhilePlaying: true,
    };
  },

  shaka(video, report, options) {
    shaka.polyfill.installAll();
    const player = new shaka.Player();
    player.configure({ abr: { enabled: false } });
    if (options.clearKeys) player.configure({ drm: { clearKeys: options.clearKeys } });
    player.addEventListener('error', (event) => report(describeShaka(event.detail)));
    return {
      async load(url) {
        await player.attach(video);
        await player.load(url).catch((error) => {
          throw new PlaybackFailure(`Shaka load failed: ${describeShaka(error)}`);
        });
        // Shaka 5.2 holds back HLS WebVTT until a media append has given it the segments'
        // timestamp offset, which its text engine learns only while it streams text: a text track
        // first chosen once the whole 8 s title is buffered shows nothing (one chosen in a long
        // title gets its cues at the next media append). A text stream started and stopped at
        // the load, while the media is being appended, learns it, as viewers' players would.
        const [text] = options.tracks ? player.getTextTracks() : [];
        if (text) {
          player.selectTextTrack(text);
          player.selectTextTrack(null);
        }
      },
      renditions: () => player.getVariantTracks().map((track) => ({ height: track.height, track })),
      // clearBuffer: drop what is buffered of the old variant.
      force: (rendition) => {
        const switches = !player.getVariantTracks().find((track) => track.id === rendition.track.id)?.active;
        player.selectVariantTrack(rendition.track, true);
        return switches;
      },
      audioCodec: () => player.getVariantTracks().find((track) => track.active)?.audioCodec ?? null,
      isLive: () => player.isLive(),
      latency: () => player.getStats().liveLatency,
      // Shaka 5's getAudioTracks lists each audio track once (getVariantTracks would list it per
      // video rendition); `primary` is the default of the manifest (DEFAULT=YES, Role main).
      audioTracks: () =>
        player.getAudioTracks().map((track) => ({
          language: track.language,
          name: track.label,
          default: track.primary,
          active: track.active,
          track,
        })),
      selectAudio: (track) => player.selectAudioTrack(track.track),
      // Shaka 5 shows the text track it is given and hides the others.
      textTracks: () =>
        player.getTextTracks().map((track) => ({
          language: track.language,
          name: track.label,
          default: track.primary,
          forced: Boolean(track.forced),
          track,
        })),
      selectText: (track) => player.selectTextTrack(track.track),
    };
  },
};

// hls.js takes ClearKey keys only from a licence server: this one answers every licence request
// (POSTed to the page's own URL, which the server answers) with the keys, as a JSON Web Key Set.
function clearKeyLicence(clearKeys) {
  const keys = Object.entries(clearKeys).map(([kid, key]) => ({ kty: 'oct', kid: base64url(kid), k: base64url(key) }));
  const licence = new TextEncoder().encode(JSON.stringify({ keys, type: 'temporary' })).buffer;
  return {
    emeEnabled: true,
    drmSystems: { 'org.w3.clearkey': { licenseUrl: location.href } },
    licenseResponseCallback: () => licence,
  };
}

// Hex digits as unpadded base64url, the form of ClearKey's JSON Web Keys.
function base64url(hex) {
  const bytes = hex.match(/../g).map((pair) => parseInt(pair, 16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function dashTrack(info) {
  return { language: info.lang, name: info.labels?.[0]?.text, default: hasRole(info, 'main') };
}

function hasRole(info, value) {
  return Boolean(info.roles?.some((role) => (role.value ?? role) === value));
}

function describeHls(data) {
  // The loader's URL (a key's for a key error), else the fragment's.
  const url = data.context?.url ?? data.frag?.url ?? data.url;
  return [
    `hls.js ${data.fatal ? 'fatal' : 'non-fatal'} ${data.type} ${data.details}`,
    data.error?.message && `: ${data.error.message}`,
    data.response?.code !== undefined && ` (HTTP ${data.response.code})`,
    url && ` at ${url}`,
  ]
    .filter(Boolean)
    .join('');
}

function describeShaka(error) {
  const name = Object.keys(shaka.util.Error.Code).find((key) => shaka.util.Error.Code[key] === error.code);
  const severity = error.severity === shaka.util.Error.Severity.CRITICAL ? 'critical' : 'recoverable';
  // The data are the error's arguments (URL, HTTP status…); response headers and bodies are noise.
  const data = error.data.filter((item) => typeof item !== 'object').map((item) => String(item).trim().slice(0, 200));
  return `Shaka ${severity} error ${error.code} ${name ?? ''}: ${data.join(', ')}`;
}

window.check = (playerName, url, expected) => checkWith(playerName, url, expected, playEveryRendition);
window.checkLive = (playerName, url, expected) => checkWith(playerName, url, expected, playLive);
window.checkTracks = (playerName, url, expected) => checkWith(playerName, url, expected, playEveryTrack);

// Loads `url` in the player and hands it to `body`, which measures and says what failed. Any
// player error, fatal or not (but the tolerated ones), stops the check and fails it.
async function checkWith(playerName, url, expected, body) {
  const result = { failures: [], playerErrors: [], tolerated: [], measures: {} };
  const mse = watchMediaSource();
  let abort;
  const failed = new Promise((_, reject) => {
    abort = reject;
  });
  failed.catch(() => {});
  const report = (text, tolerated = false) => {
    (tolerated ? result.tolerated : result.playerErrors).push(text);
    if (!tolerated) abort(new PlaybackFailure(text));
  };
  const step = (promise) => Promise.race([promise, failed]);
  try {
    checkCodecs(expected.codecs);
    const video = document.querySelector('video');
    video.addEventListener('error', () => report(`HTMLMediaElement error ${video.error.code}: ${video.error.message}`));
    const player = adapters[playerName](video, report, { tracks: Boolean(expected.tracks), clearKeys: expected.clearKeys });
    const metadata = waitFor(video, 'loadedmetadata', 'the first media data', 20);
    // Bounded by the wait for metadata: a player can wait for ever for a presentation that does
    // not come.
    await step(Promise.all([player.load(url), metadata]));
    await body({ video, player, mse, step, report, result }, expected);
  } catch (error) {
    if (error instanceof PlaybackFailure) {
      result.failures.push(error.message);
      // A player reacts to the media element's error, or to its own, with an error of its own:
      // give it a moment to say it.
      await new Promise((resolve) => setTimeout(resolve, 500));
    } else {
      result.harnessError = String(error?.stack ?? error);
    }
  }
  // What the player said after the failure that stopped the check.
  result.failures.push(...result.playerErrors.filter((text) => !result.failures.includes(text)));
  return result;
}

async function playEveryRendition({ video, player, mse, step, result }, expected) {
  const renditions = player.renditions().sort((a, b) => b.height - a.height);
  const heights = renditions.map((rendition) => rendition.height);
  if (JSON.stringify(heights) !== JSON.stringify([...expected.heights].sort((a, b) => b - a))) {
    throw new PlaybackFailure(`the player lists renditions of heights ${heights}, expected ${expected.heights}`);
  }
  result.measures.renditions = [];
  for (const rendition of renditions) {
    const measured = await step(playThrough(video, player, mse, rendition, expected));
    result.measures.renditions.push(measured);
    result.failures.push(...renditionFailures(measured, rendition.height, video.duration, expected));
  }
  Object.assign(result.measures, overall(video, player, mse.types));
  result.failures.push(...overallFailures(result.measures, expected));
}

function checkCodecs(codecs) {
  const unsupported = codecs
    .map((codec) => `${/^(mp4a|opus|ac-3|ec-3)/.test(codec) ? 'audio' : 'video'}/mp4; codecs="${codec}"`)
    .filter((type) => !MediaSource.isTypeSupported(type));
  if (unsupported.length) {
    throw new PlaybackFailure(
      `this Chromium (${navigator.userAgent}) cannot play the package: MediaSource.isTypeSupported is false for ${unsupported.join(', ')}`,
    );
  }
}

// What the player asks of Media Source Extensions, seen by MSE itself rather than by the player:
// the SourceBuffer types it creates, and how many buffer removals it has started.
function watchMediaSource() {
  const mse = { types: [], buffers: [], removals: 0 };
  const addSourceBuffer = MediaSource.prototype.addSourceBuffer;
  MediaSource.prototype.addSourceBuffer = function watchedAddSourceBuffer(type) {
    const buffer = addSourceBuffer.call(this, type);
    mse.types.push(type);
    mse.buffers.push(buffer);
    return buffer;
  };
  const remove = SourceBuffer.prototype.remove;
  SourceBuffer.prototype.remove = function watchedRemove(start, end) {
    mse.removals += 1;
    return remove.call(this, start, end);
  };
  return mse;
}

// Forces one rendition, plays from the start to the end and records every presented frame.
//
// Players report loads cut short by a switch or a seek as errors, and Chromium resumes at the
// next keyframe when the media under a paused position is removed and appended again, which
// would skip up to a segment whatever the package. So the switch is made at the start with
// nothing loading (buffered to the end), the player's flush and its refill to the end are
// awaited, and a seek to the start then restarts Chromium's pipeline on the new rendition.
async function playThrough(video, player, mse, rendition, expected) {
  const started = performance.now();
  video.pause();
  await seekToStart(video);
  await bufferedToEnd(video);
  const removals = mse.removals;
  if (player.force(rendition)) {
    const flushed = () => mse.removals > removals && !mse.buffers.some((buffer) => buffer.updating);
    await until(flushed, `the player's flush for the ${rendition.height}p rendition`);
    await bufferedToEnd(video);
  }
  const decodedBefore = video.getVideoPlaybackQuality().totalVideoFrames;
  await seekToStart(video);
  const frames = [];
  let watching = true;
  const onFrame = (_, metadata) => {
    frames.push({ time: metadata.mediaTime, height: metadata.height });
    if (watching) video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  video.playbackRate = RATE;
  // Shaka sets the rate to 0 while it buffers and then restores its own, missing a change made
  // meanwhile: set it again once playback runs.
  video.addEventListener('playing', () => {
    if (video.playbackRate !== RATE) video.playbackRate = RATE;
  }, { once: true });
  const ended = waitFor(video, 'ended', `the end of the ${rendition.height}p rendition`, expected.duration / RATE + 20);
  const playing = performance.now();
  await video.play();
  await ended;
  watching = false;
  const times = frames.map((frame) => frame.time);
  return {
    height: rendition.height,
    seconds: (performance.now() - started) / 1000,
    playSeconds: (performance.now() - playing) / 1000,
    presented: frames.length,
    decoded: video.getVideoPlaybackQuality().totalVideoFrames - decodedBefore,
    frameHeights: [...new Set(frames.map((frame) => frame.height))],
    videoHeight: video.videoHeight,
    first: Math.min(...times),
    last: Math.max(...times),
    maxGap: Math.max(0, ...times.slice(1).map((time, index) => time - times[index])),
  };
}

function renditionFailures(measured, height, duration, expected) {
  const name = `${height}p rendition`;
  const failures = [];
  if (measured.frameHeights.length !== 1 || measured.frameHeights[0] !== height || measured.videoHeight !== height) {
    failures.push(`${name}: frames shown at heights ${measured.frameHeights} (videoHeight ${measured.videoHeight})`);
  }
  // At 8× a 60 Hz compositor shows about one frame in three, and the first one a few hundred ms
  // of media late when the pipeline starts; the decoded count below is the exact check.
  const slack = expected.segment / 2;
  if (measured.first > slack || measured.last < duration - slack) {
    failures.push(`${name}: frames shown from ${measured.first} s to ${measured.last} s of ${duration} s`);
  }
  // A busy compositor can skip a few frames in a row (0.84 s of media seen at 4×) while every
  // frame is still decoded; a jump over a whole segment is a skip even if its frames were decoded.
  if (measured.maxGap >= expected.segment) {
    failures.push(`${name}: ${measured.maxGap.toFixed(3)} s of media skipped between two shown frames`);
  }
  const frames = Math.round(expected.duration * expected.fps);
  if (measured.decoded < frames) {
    failures.push(`${name}: ${measured.decoded} frames decoded, the presentation has ${frames}`);
  }
  return failures;
}

function overall(video, player, sourceBuffers) {
  const played = [];
  for (let index = 0; index < video.played.length; index += 1) {
    played.push([video.played.start(index), video.played.end(index)]);
  }
  return {
    duration: video.duration,
    played,
    audioBytesDecoded: video.webkitAudioDecodedByteCount,
    audioCodec: player.audioCodec(),
    sourceBuffers,
  };
}

function overallFailures(measures, expected) {
  const failures = [];
  if (Math.abs(measures.duration - expected.duration) > EDGE) {
    failures.push(`duration ${measures.duration} s, the source lasts ${expected.duration} s`);
  }
  // With MPEG-TS the players' timelines start at the first decode time, and the first frame is
  // shown a composition delay (0.08 s here) later: a sliver at the start may stay unplayed.
  const unplayed = measures.duration - measures.played.reduce((sum, [start, end]) => sum + end - start, 0);
  if (unplayed > EDGE) {
    failures.push(`played ranges ${JSON.stringify(measures.played)} leave ${unplayed.toFixed(3)} s of 0–${measures.duration} s unplayed`);
  }
  failures.push(...audioFailures(measures, expected));
  return failures;
}

function audioFailures(measures, expected) {
  const audioBuffers = measures.sourceBuffers.filter((type) => type.startsWith('audio/') || /mp4a|opus/.test(type));
  const audio = measures.audioBytesDecoded > 0 && Boolean(measures.audioCodec) && audioBuffers.length > 0;
  if (audio === expected.audio) return [];
  return [
    `audio ${expected.audio ? 'missing' : 'unexpected'}: ${measures.audioBytesDecoded} bytes decoded, ` +
      `player's audio codec ${measures.audioCodec}, SourceBuffers ${measures.sourceBuffers}`,
  ];
}

// A title's tracks: expected.tracks is { audio: [{ language, name, default, folder }],
// subtitles: [{ language, name, default, forced, cues: [{ start, end, text }] }] }. The player
// must list each track with its language, name, default flag (where it has one) and, for
// subtitles, forced flag, start with the default audio and no subtitles, decode audio from each
// audio track it is switched to, and show each cue of each subtitle track, once, at the source's
// times.
async function playEveryTrack({ video, player, step, result }, expected) {
  performance.setResourceTimingBufferSize(100_000);
  const { audio, subtitles } = expected.tracks;
  const listedAudio = player.audioTracks();
  const listedText = player.textTracks();
  result.measures.listed = { audio: listedAudio.map(describeTrack), text: listedText.map(describeTrack) };
  result.failures.push(...listingFailures('audio', listedAudio, audio), ...listingFailures('subtitle', listedText, subtitles));
  const playing = listedAudio.filter((track) => track.active);
  const main = audio.find((track) => track.default);
  if (playing.length !== 1 || !sameTrack(playing[0], main)) {
    result.failures.push(`the player starts with audio ${playing.map(describeTrack).join(', ') || 'none'}, the default is ${describeTrack(main)}`);
  }
  const shown = showingTextTracks(video);
  if (shown.length > (player.showsTextFromTheLoad ? 1 : 0)) result.failures.push(`subtitles shown before any is chosen: ${shown.map((track) => track.label)}`);
  // A forced track is for viewers of audio in its language: with the default audio in another, a
  // player that shows subtitles from the load (dash.js) must not choose it. Told by its language
  // alone (the title has no other track in it): dash.js labels the element's text tracks with
  // their AdaptationSet ids.
  const forced = shown.filter((track) =>
    subtitles.some((want) => want.forced && want.language !== main.language && want.language === track.language),
  );
  if (forced.length) result.failures.push(`a forced track shown from the load: ${forced.map((track) => `${track.language} "${track.label}"`)}`);
  result.measures.audio = [];
  for (const want of audio) {
    const track = findTrack(player.audioTracks(), want, audio);
    if (!track) continue;
    const measured = await step(playAudioTrack(video, player, track, want, () => findTrack(player.audioTracks(), want, audio)));
    result.measures.audio.push(measured);
    if (!(measured.bytes > 0)) result.failures.push(`no audio decoded while playing ${measured.track}`);
    if (!measured.segments) result.failures.push(`nothing fetched from ${want.folder}/ for ${measured.track}`);
  }
  result.measures.text = [];
  for (const want of subtitles) {
    const track = findTrack(player.textTracks(), want, subtitles);
    if (!track) continue;
    const measured = await step(showCues(video, player, track, want));
    result.measures.text.push(measured);
    result.failures.push(...measured.failures);
  }
}

// Where an audio track is played from, and for how long (at 1×, which Chromium plays as it is).
const AUDIO_FROM = 1;
const AUDIO_PLAY = 1;
// How far a cue may be from the source's times on the media element's timeline.
const CUE_SLACK = 0.1;

function sameTrack(listed, want) {
  return listed.language === want.language && listed.name === want.name;
}

// The listed track that is `want`, else (when its name is wrong, which the listing check reports)
// the one at its place among the tracks of its language, so that its playback is judged anyway.
function findTrack(listed, want, expected) {
  const exact = listed.find((track) => sameTrack(track, want));
  if (exact) return exact;
  const place = expected.filter((other) => other.language === want.language).indexOf(want);
  return listed.filter((track) => track.language === want.language)[place];
}

function describeTrack(track) {
  return `${track.language} "${track.name}"${track.default ? ' (default)' : ''}${track.forced ? ' (forced)' : ''}`;
}

// The flags a listed track must have as the source says, where the player has them (dash.js has
// no default flag for text; forced is said of subtitles only).
const FLAGS = ['default', 'forced'];

// Each expected track listed once, nothing else listed, and its flags as expected.
function listingFailures(kind, listed, expected) {
  const failures = [];
  const key = (track) => `${track.language} "${track.name}"`;
  const listedKeys = listed.map(key).sort();
  const expectedKeys = expected.map(key).sort();
  if (JSON.stringify(listedKeys) !== JSON.stringify(expectedKeys)) {
    failures.push(`the player lists ${kind} tracks ${listedKeys.join(', ') || 'none'}, expected ${expectedKeys.join(', ')}`);
  }
  for (const want of expected) {
    const track = listed.find((other) => sameTrack(other, want));
    for (const flag of FLAGS.filter((flag) => track?.[flag] !== undefined && want[flag] !== undefined)) {
      if (Boolean(track[flag]) !== want[flag]) {
        const says = want[flag] ? 'it is' : 'it is not';
        failures.push(`${kind} track ${key(want)} is ${track[flag] ? '' : 'not '}${flag} in the player, the source says ${says}`);
      }
    }
  }
  return failures;
}

// Switches to `track`, plays AUDIO_PLAY s of it from AUDIO_FROM and counts the audio decoded and
// the files of its folder fetched since the switch (or ever, for the track playing already);
// `current()` is the track as the player lists it now.
async function playAudioTrack(video, player, track, want, current) {
  const label = describeTrack(want);
  const fetchedBefore = performance.getEntriesByType('resource').length;
  player.selectAudio(track);
  await until(() => current()?.active, `the player to switch to ${label}`, 10);
  await seekTo(video, AUDIO_FROM);
  const bytesBefore = video.webkitAudioDecodedByteCount;
  video.playbackRate = 1;
  await video.play();
  await until(() => video.currentTime >= AUDIO_FROM + AUDIO_PLAY, `${AUDIO_PLAY} s of ${label} to play`, 15);
  video.pause();
  const fetched = performance.getEntriesByType('resource').slice(track.active ? 0 : fetchedBefore);
  return {
    track: label,
    bytes: video.webkitAudioDecodedByteCount - bytesBefore,
    segments: fetched.filter((entry) => new URL(entry.name).pathname.includes(`/${want.folder}/`)).length,
  };
}

// Chooses a subtitle track and seeks to the middle of each of its cues, which must then be the
// active cue of the one text track shown, with the source's times, and there once.
async function showCues(video, player, track, want) {
  const label = describeTrack(want);
  const measured = { track: label, cues: [], failures: [] };
  player.selectText(track);
  for (const cue of want.cues) {
    const middle = (cue.start + cue.end) / 2;
    await seekTo(video, middle);
    const matching = () => showingTextTracks(video).flatMap((shown) => Array.from(shown.cues ?? []).filter((other) => cueText(other) === cue.text));
    const active = () => showingTextTracks(video).some((shown) => Array.from(shown.activeCues ?? []).some((other) => cueText(other) === cue.text));
    if (player.showsCuesWhilePlaying) {
      video.playbackRate = 1;
      await video.play();
    }
    try {
      await until(() => matching().length > 0 && active(), () => `"${cue.text}" of ${label} shown at ${middle} s (showing: ${showingDescription(video)})`, 10);
    } catch (error) {
      if (!(error instanceof PlaybackFailure)) throw error;
      measured.failures.push(error.message);
      continue;
    } finally {
      video.pause();
    }
    const found = matching();
    measured.cues.push(found.map((other) => `"${cue.text}" ${other.startTime.toFixed(3)}–${other.endTime.toFixed(3)}`).join(' + '));
    if (found.length !== 1) measured.failures.push(`"${cue.text}" of ${label} is in the text track ${found.length} times`);
    const [shown] = found;
    if (Math.abs(shown.startTime - cue.start) > CUE_SLACK || Math.abs(shown.endTime - cue.end) > CUE_SLACK) {
      measured.failures.push(
        `"${cue.text}" of ${label} shown ${shown.startTime.toFixed(3)}–${shown.endTime.toFixed(3)} s, the source says ${cue.start}–${cue.end} s`,
      );
    }
  }
  if (showingTextTracks(video).length > 1) measured.failures.push(`several text tracks shown at once: ${showingDescription(video)}`);
  return measured;
}

function showingTextTracks(video) {
  return Array.from(video.textTracks).filter((track) => track.mode === 'showing');
}

function showingDescription(video) {
  const shown = showingTextTracks(video);
  if (!shown.length) return 'no text track';
  return shown
    .map((track) => `${track.language} "${track.label}": ${Array.from(track.cues ?? []).map((cue) => `${cue.startTime.toFixed(2)} ${cueText(cue)}`).join(' | ') || 'no cues'}`)
    .join('; ');
}

function cueText(cue) {
  return (cue.text ?? '').replace(/<[^>]*>/g, '').trim();
}

function seekTo(video, time) {
  const seeked = waitFor(video, 'seeked', `the seek to ${time} s`, 10);
  video.currentTime = time;
  return seeked;
}

// Joins a live presentation where the player chooses to, plays it at 1× for expected.observe
// seconds and records every frame shown meanwhile.
async function playLive({ video, player, mse, step, report, result }, expected) {
  const frames = [];
  let watching = true;
  const onFrame = (now, metadata) => {
    const { buffered } = video;
    const ahead = buffered.length > 0 ? buffered.end(buffered.length - 1) - metadata.mediaTime : 0;
    frames.push({ now, time: metadata.mediaTime, height: metadata.height, ahead });
    if (watching) video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  // play() stays pending while the player has nothing to play: the wait for frames bounds it.
  video.play().catch((error) => report(`play() failed: ${error}`));
  // Playback runs once frames follow each other: Shaka holds the rate at 0 while it buffers.
  // Loaded and with metadata, a player shows its first frames within a second or two.
  await step(until(() => frames.length >= 2, 'the first frames of the live presentation', 10));
  const start = liveState(video, player);
  await step(new Promise((resolve) => setTimeout(resolve, expected.observe * 1000)));
  const end = liveState(video, player);
  watching = false;
  const shown = frames.filter((frame) => frame.now >= start.wall && frame.now <= end.wall);
  const steps = shown.slice(1).map((frame, index) => frame.time - shown[index].time);
  const instants = [start.wall, ...shown.map((frame) => frame.now), end.wall];
  result.measures = {
    live: [start.live, end.live],
    observed: (end.wall - start.wall) / 1000,
    joinedAt: start.time,
    behindEdge: start.edge - start.time,
    latency: [start.latency, end.latency],
    advanced: end.time - start.time,
    decoded: end.decoded - start.decoded,
    dropped: end.dropped - start.dropped,
    presented: shown.length,
    longestWithoutFrame: Math.max(...instants.slice(1).map((instant, index) => instant - instants[index])) / 1000,
    largestStep: Math.max(0, ...steps),
    // How close the player came to running out of media: what it had buffered past a shown frame.
    leastAhead: Math.min(...shown.map((frame) => frame.ahead)),
    smallestStep: Math.min(0, ...steps),
    frameHeights: [...new Set(shown.map((frame) => frame.height))],
    videoHeight: video.videoHeight,
    audioBytesDecoded: end.audioBytes - start.audioBytes,
    audioCodec: player.audioCodec(),
    sourceBuffers: mse.types,
  };
  result.failures.push(...liveFailures(result.measures, expected));
}

function liveState(video, player) {
  const quality = video.getVideoPlaybackQuality();
  const { seekable } = video;
  return {
    wall: performance.now(),
    time: video.currentTime,
    edge: seekable.length > 0 ? seekable.end(seekable.length - 1) : NaN,
    live: player.isLive(),
    latency: player.latency(),
    decoded: quality.totalVideoFrames,
    dropped: quality.droppedVideoFrames,
    audioBytes: video.webkitAudioDecodedByteCount,
  };
}

function liveFailures(measures, expected) {
  const failures = [];
  if (!measures.live.every(Boolean)) {
    failures.push(`the player does not take the presentation for live (at the start, at the end: ${measures.live})`);
  }
  // At 1× the playhead follows the wall clock; a stall or a player waiting for segments that do
  // not come holds it back.
  if (measures.advanced < 0.8 * measures.observed) {
    failures.push(`currentTime advanced ${measures.advanced.toFixed(3)} s in ${measures.observed.toFixed(1)} s of playback at 1×`);
  }
  if (measures.longestWithoutFrame >= expected.segment) {
    failures.push(`no frame shown for ${measures.longestWithoutFrame.toFixed(3)} s`);
  }
  if (measures.largestStep >= expected.segment || measures.smallestStep < 0) {
    failures.push(
      `shown frames jump ${measures.largestStep.toFixed(3)} s forward and ${(-measures.smallestStep).toFixed(3)} s back in media time`,
    );
  }
  const frames = Math.round(0.8 * measures.observed * expected.fps);
  if (measures.decoded < frames) {
    failures.push(`${measures.decoded} frames decoded in ${measures.observed.toFixed(1)} s, fewer than ${frames}`);
  }
  const heights = [...measures.frameHeights, measures.videoHeight];
  if (!heights.every((height) => expected.heights.includes(height))) {
    failures.push(`frames shown at heights ${measures.frameHeights} (videoHeight ${measures.videoHeight}), the ladder has ${expected.heights}`);
  }
  failures.push(...audioFailures(measures, expected));
  return failures;
}

// Seeks to where the buffered media starts, when that is the presentation's start: a player's
// timeline can begin a little after 0 (Shaka's at 0.001 s for HLS fMP4, MPEG-TS ones at the
// first frame's composition delay), and a seek before it is a seek out of the buffer, which
// makes Shaka drop and reload everything.
function seekToStart(video) {
  const { buffered } = video;
  const start = buffered.length > 0 && buffered.start(0) <= EDGE ? buffered.start(0) : 0;
  const seeked = waitFor(video, 'seeked', `the seek to the start (${start} s)`, 10);
  video.currentTime = start;
  return seeked;
}

function bufferedToEnd(video) {
  const toEnd = () => video.buffered.length > 0 && video.buffered.end(video.buffered.length - 1) >= video.duration - EDGE;
  return until(toEnd, () => `the player to buffer to the end (buffered: ${ranges(video.buffered)})`);
}

// Polls a condition the media element has no event for; `what` says what was awaited.
async function until(condition, what, seconds = 20) {
  const deadline = performance.now() + seconds * 1000;
  while (!condition()) {
    if (performance.now() > deadline) {
      throw new PlaybackFailure(`timed out after ${seconds} s waiting for ${typeof what === 'function' ? what() : what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function ranges(timeRanges) {
  return JSON.stringify(Array.from({ length: timeRanges.length }, (_, index) => [timeRanges.start(index), timeRanges.end(index)]));
}

function waitFor(target, event, what, seconds) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new PlaybackFailure(`timed out after ${seconds} s waiting for ${what}`)), seconds * 1000);
    target.addEventListener(
      event,
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
