// The privacy audit, live: every request a context of the page makes (the page itself and the
// engine's worker) and every Content-Security-Policy violation, counted as the page's privacy
// line shows them (issue 14): requests off the origin, requests during a turn, violations.
//
// Why these sources: the Resource Timing entries (PerformanceObserver 'resource') are the only
// record a page has of its own requests, and each context has its own (the worker's fetches of
// weights.bin never appear in the page's). A request that the CSP (web/serve.py: connect-src
// 'self') refuses never starts, so it has no entry: it is a `securitypolicyviolation` event
// instead. The worker reports its entries and violations to the page as 'privacy' messages
// (web/protocol.mjs); the client keeps them as engine.privacy (web/client.mjs).
//
// Times are absolute (timeOrigin + startTime, ms since the epoch) so that the worker's entries
// and the page's turns, on two clocks, compare.

/** One request as reported: {url, at, initiator}. data: and blob: URLs are no network requests. */
function entryOf(e) {
  return { url: e.name, at: performance.timeOrigin + e.startTime, initiator: e.initiatorType || '' };
}

function violationOf(ev) {
  return { url: String(ev.blockedURI || ''), directive: String(ev.effectiveDirective || ev.violatedDirective || ''), at: Date.now() };
}

/**
 * Watch this context's requests and CSP violations: report({requests: [...], violations: [...]})
 * gets each batch as it comes (earlier entries first, `buffered`). Works in a page and a worker.
 */
export function watchRequests(report, scope = globalThis) {
  // The default buffer keeps 250 entries; a load makes about 60, but a long session more: a full
  // buffer would stop the observer's entries too (Resource Timing: entries beyond it are dropped).
  try { performance.setResourceTimingBufferSize?.(1e6); } catch { /* not in every scope */ }
  let observer = null;
  if (typeof PerformanceObserver === 'function') {
    observer = new PerformanceObserver((list) => {
      const requests = list.getEntries().map(entryOf);
      if (requests.length) report({ requests, violations: [] });
    });
    try { observer.observe({ type: 'resource', buffered: true }); } catch { observer = null; }
  }
  const onViolation = (ev) => report({ requests: [], violations: [violationOf(ev)] });
  scope.addEventListener?.('securitypolicyviolation', onViolation);
  return () => { observer?.disconnect(); scope.removeEventListener?.('securitypolicyviolation', onViolation); };
}

const isNetwork = (url) => /^https?:/i.test(url);

/** The page's ledger: counts what watchRequests reports, from any context, against the turns. */
export class PrivacyLedger extends EventTarget {
  origin;
  requests = 0;         // network requests, all contexts
  offOrigin = [];       // their URLs, for requests to another origin
  duringTurns = [];     // their URLs, for requests that started while an answer was being written
  violations = [];      // {url, directive}
  #turns = [];          // [start, end] absolute ms; end null while the turn runs
  #seen = new Set();    // url@at: a report that arrives twice counts once

  constructor(origin = globalThis.location?.origin) {
    super();
    this.origin = origin;
  }

  turnStarted() { this.#turns.push([Date.now(), null]); }
  turnEnded() {
    const t = this.#turns[this.#turns.length - 1];
    if (t && t[1] === null) t[1] = Date.now();
  }

  #inTurn(at) { return this.#turns.some(([a, b]) => at >= a && (b === null || at <= b)); }

  /** Count a batch from watchRequests (the page's, or the worker's through the engine). */
  add({ requests = [], violations = [] }) {
    for (const r of requests) {
      const key = `${r.url}@${r.at}`;
      if (!isNetwork(r.url) || this.#seen.has(key)) continue;
      this.#seen.add(key);
      this.requests += 1;
      let origin = '';
      try { origin = new URL(r.url).origin; } catch { /* counted as off-origin below */ }
      if (origin !== this.origin) this.offOrigin.push(r.url);
      if (this.#inTurn(r.at)) this.duringTurns.push(r.url);
    }
    for (const v of violations) this.violations.push({ url: v.url, directive: v.directive });
    this.dispatchEvent(new Event('change'));
  }

  /** The counts, for the page's line and for tests. */
  counts() {
    return { requests: this.requests, offOrigin: this.offOrigin.length, duringTurns: this.duringTurns.length, violations: this.violations.length };
  }

  /** The line the page shows. */
  text() {
    const c = this.counts();
    return `Privacy: ${c.offOrigin} request${c.offOrigin === 1 ? '' : 's'} left this site · ` +
      `${c.duringTurns} during answers · ${c.violations} blocked by the security policy (${c.requests} requests in all, from this site)`;
  }
}
