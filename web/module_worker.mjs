// A module worker for a script that may be on another origin. A worker's script must be
// same-origin; when intab's files come from elsewhere (a CDN), a same-origin blob: module imports
// the real one instead. That needs the host's CSP to allow `worker-src blob:` and the other origin
// to send CORS headers (docs/embedding.md, "From another origin").

export function moduleWorker(url, name) {
  const href = new URL(url);
  const here = globalThis.location?.origin;
  if (!here || href.origin === here) return new Worker(href, { type: 'module', name });
  const blob = new Blob([`import ${JSON.stringify(href.href)};`], { type: 'text/javascript' });
  return new Worker(URL.createObjectURL(blob), { type: 'module', name });
}
