// A static HTTP server on 127.0.0.1 for the players: URL prefixes map to folders, and every
// request is logged so the harness can check what a player fetched (and what it got).
import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.mpd': 'application/dash+xml',
  '.ts': 'video/mp2t',
  '.mp4': 'video/mp4',
  '.m4s': 'video/iso.segment',
  '.key': 'application/octet-stream',
  '.vtt': 'text/vtt; charset=utf-8',
};

// Serves `routes` ({ '/prefix/': '/folder' }) and resolves to { origin, requests, close }; a
// request's `by` is its `byHeader` header (who asked). `licences` ({ '/path': { KID: KEY } }, hex)
// are ClearKey licence servers answering POSTed EME licence requests with the keys they know.
export async function serve(routes, byHeader, licences = {}) {
  const requests = [];
  const server = createServer(async (request, response) => {
    const urlPath = decodedPath(request.url);
    const status = request.method === 'POST' && licences[urlPath]
      ? await answerLicence(licences[urlPath], request, response)
      : await answer(resolve(routes, urlPath), request, response);
    requests.push({ method: request.method, path: urlPath, status, by: request.headers[byHeader] });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

async function answer(file, request, response) {
  const info = file && (await stat(file).catch(() => null));
  if (!info?.isFile()) {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return 404;
  }
  response.writeHead(200, {
    'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
    'content-length': info.size,
    'cache-control': 'no-store',
  });
  if (request.method === 'HEAD') {
    response.end();
  } else {
    createReadStream(file)
      .on('error', () => response.destroy())
      .pipe(response);
  }
  return 200;
}

// A ClearKey licence (W3C EME §9.1.4): the JSON Web Key Set of the requested key IDs it knows.
async function answerLicence(keys, request, response) {
  let body = '';
  for await (const chunk of request) body += chunk;
  const known = Object.fromEntries(
    Object.entries(keys).map(([kid, key]) => [Buffer.from(kid, 'hex').toString('base64url'), key]),
  );
  const kids = JSON.parse(body).kids ?? [];
  const found = kids
    .filter((kid) => known[kid])
    .map((kid) => ({ kty: 'oct', kid, k: Buffer.from(known[kid], 'hex').toString('base64url') }));
  const licence = JSON.stringify({ keys: found, type: 'temporary' });
  response.writeHead(found.length ? 200 : 403, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  response.end(licence);
  return found.length ? 200 : 403;
}

// The path of a request's URL without its query, or null when it is not valid percent-encoding.
function decodedPath(url) {
  try {
    return decodeURIComponent(url.split('?')[0]);
  } catch {
    return null;
  }
}

// The file a URL path names, or null when no route matches or the path climbs out of its folder.
function resolve(routes, urlPath) {
  if (urlPath === null) return null;
  for (const [prefix, folder] of Object.entries(routes)) {
    if (urlPath.startsWith(prefix)) {
      const file = path.join(folder, urlPath.slice(prefix.length));
      return file.startsWith(folder + path.sep) ? file : null;
    }
  }
  return null;
}
