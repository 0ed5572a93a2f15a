// camgate's HTTP APIs from the test process (REST, WHEP, /api/streams): docs/API.md.

import { pageUrl } from './config.mjs';

// One request: JSON body in, {status, headers, text, json} out (json null when not JSON).
export async function api(method, apiPath, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await fetch(pageUrl(apiPath.replace(/^\//, '')), init);
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, text, json };
}

// GET /api/streams → the entry for camera `uri` (undefined when camgate has none).
export async function streamEntry(uri) {
  const res = await api('GET', '/api/streams');
  if (res.status !== 200 || !Array.isArray(res.json)) {
    throw new Error(`GET /api/streams: ${res.status} ${res.text}`);
  }
  return res.json.find((s) => s.uri === uri || s.url === uri);
}
