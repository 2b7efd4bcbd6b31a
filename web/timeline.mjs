// The start's timeline: when each phase of a load began and ended, in ms on the worker's clock
// (performance.now(), from the worker's timeOrigin). ready.timeline carries it with that origin
// (an epoch ms), so the page (and `build.py bench --start`) can put it on its own clock.
//
// Phases overlap (the worker starts Pyodide, the kernel and the model read at once): a span
// each, not a sum, is what says which one the start waits for.

export function createTimeline() {
  const spans = {};
  return {
    /** Time `promise` (or a function's promise) as the phase `name`; returns it. */
    span(name, work) {
      const start = performance.now();
      const p = Promise.resolve(typeof work === 'function' ? work() : work);
      p.then(() => { spans[name] = [Math.round(start), Math.round(performance.now())]; }, () => {});
      return p;
    },
    /** A phase timed by hand: start(name) ... end(name). */
    start(name) { spans[name] = [Math.round(performance.now()), null]; },
    end(name) { if (spans[name]) spans[name][1] = Math.round(performance.now()); },
    set(name, start, end) { spans[name] = [Math.round(start), Math.round(end)]; },
    toJSON() { return { origin: performance.timeOrigin, spans: { ...spans } }; },
  };
}
