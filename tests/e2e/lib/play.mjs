// play(browser, origin, url, player, expected, { check, label }): plays one package URL in one
// player in a fresh page with page/check.js's `check` (window.check for VOD, window.checkLive for
// live) and returns the page's result plus the page's console, independent of how the package was
// produced. Every request of the page carries `label` in PAGE_HEADER, for the server's log.

// The player builds served from node_modules under /lib/.
const LIBRARIES = {
  'hls.js': '/lib/hls.js/dist/hls.min.js',
  'dash.js': '/lib/dashjs/dist/modern/umd/dash.all.min.js',
  shaka: '/lib/shaka-player/dist/shaka-player.compiled.js',
};

export const PAGE_HEADER = 'x-e2e-page';

// A whole check plays every rendition at 8× in well under a minute; far beyond that is a hung page.
const PAGE_TIMEOUT_MS = 120_000;

export async function play(browser, origin, url, player, expected, { check, label }) {
  const page = await browser.newPage({ extraHTTPHeaders: { [PAGE_HEADER]: label } });
  const consoleLines = [];
  page.on('console', (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => consoleLines.push(`page error: ${error.message}`));
  try {
    await page.goto(`${origin}/page/player.html`);
    await page.addScriptTag({ url: LIBRARIES[player] });
    let timer;
    const result = await Promise.race([
      page.evaluate(([name, src, want, how]) => window[how](name, src, want), [player, url, expected, check]),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('the page did not answer')), PAGE_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    return { ...result, console: consoleLines };
  } catch (error) {
    return { failures: [], playerErrors: [], tolerated: [], harnessError: String(error), console: consoleLines };
  } finally {
    await page.close();
  }
}
