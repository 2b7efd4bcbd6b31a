// A property-based fuzzer of intab's JS API (issue 14, item 4), run in the page by
// tests/browser/test_fuzz.py (a small budget) and `build.py soak` (a longer one). fast-check
// (npm) draws requests: messages of any shape (roles, lone surrogates, NUL, control and astral
// characters, non-strings), sampling options in and out of range, stream or not, chat or text,
// and an abort at a random moment. The property: every call resolves with an OpenAI-shaped
// object or rejects with a typed error (IntabError with a name, a message and a hint; never an
// InternalError, which means a bug), a stream ends or rejects the same way, and the engine stays
// usable: a greedy probe after every few runs answers as it did before the fuzz.
//
// Served with fast-check's imports rewritten to relative paths (test_fuzz.py: the page's CSP
// allows no inline import map).

import * as fc from './fast-check/fast-check.js';

const TEXT = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),                 // lone surrogates included
  fc.constantFrom('', '\0', 'a\0b', '\uD800', '\uDFFF x \uD83D', '\r\n\t', '<|im_start|>user', '{{ messages }}', '\u202E\u200B'),
);
const CONTENT = fc.oneof({ weight: 40, arbitrary: TEXT }, fc.constant(null), fc.integer(), fc.constant({ text: 'x' }),
  fc.constant([{ type: 'text', text: 'Hi' }]));
const ROLE = fc.oneof({ weight: 40, arbitrary: fc.constantFrom('user', 'user', 'assistant', 'system') }, fc.constantFrom('tool', 'developer', '', 'USER'), fc.string({ maxLength: 6 }));
const MESSAGE = fc.oneof({ weight: 40, arbitrary: fc.record({ role: ROLE, content: CONTENT }) },
  fc.constant(null), fc.constant('Hi'), fc.record({ role: ROLE }), fc.record({ content: TEXT }));
const MESSAGES = fc.oneof({ weight: 30, arbitrary: fc.array(MESSAGE, { minLength: 1, maxLength: 4 }) }, fc.constant([]), fc.constant(undefined), fc.constant('Hi'), fc.constant({}));

// Mostly valid values (so that most calls reach the model), now and then one out of range or of
// the wrong type; and now and then one field that must be refused.
const MOSTLY = (valid, ...bad) => fc.oneof({ weight: 60, arbitrary: valid }, fc.constantFrom(...bad));
const NUMBER = (lo, hi) => MOSTLY(fc.double({ min: lo, max: hi, noNaN: true }), -1, NaN, Infinity, 1e300, '1', null, true);
const SANE = fc.record({
  // Always a small budget: the model's default (256 tokens) would make each run seconds long.
  max_tokens: MOSTLY(fc.integer({ min: 1, max: 6 }), 0, -3, 2.5, '4', null),
  temperature: NUMBER(0, 2), top_p: NUMBER(0.05, 1), top_k: MOSTLY(fc.integer({ min: 0, max: 100 }), -2, 'k'),
  min_p: NUMBER(0, 0.5), repetition_penalty: NUMBER(0.5, 2), seed: MOSTLY(fc.integer({ min: 0, max: 2 ** 31 }), -1, 2 ** 60, 'x'),
  stop: MOSTLY(fc.oneof(TEXT, fc.array(TEXT, { maxLength: 4 })), 42, [1, 2]),
  context_overflow: MOSTLY(fc.constantFrom('error', 'drop_oldest'), 'slide', 7),
  logprobs: fc.boolean(), top_logprobs: MOSTLY(fc.integer({ min: 0, max: 5 }), -1, 25),
  stream: MOSTLY(fc.boolean(), 'yes'),
  response_format: MOSTLY(fc.constantFrom({ type: 'text' }, { type: 'json_object' }), { type: 'xml' }, 'json'),
}, { requiredKeys: ['max_tokens'] }).map((o) => {
  if (o.max_tokens === null) o.max_tokens = 4;   // null is the model's default: 256 tokens, too slow here
  if (o.logprobs !== true && typeof o.top_logprobs === 'number' && o.top_logprobs >= 0 && o.top_logprobs <= 5) delete o.top_logprobs;
  return o;
});
const HOSTILE = fc.constantFrom({ n: 2 }, { frequency_penalty: 0.5 }, { bogus_field: 1 }, { logit_bias: { 1: 2 } }, { model: 'other' },
  { stream_options: { include_usage: true } }, { max_completion_tokens: 3 }, { ignore_eos: true });
const OPTIONS = fc.tuple(SANE, fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, HOSTILE)).map(([o, h]) => ({ ...o, ...(h || {}) }));
// When to abort: never, before the call, or 0-150 ms into it.
const ABORT = fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, fc.constant(-1), fc.integer({ min: 0, max: 150 }));
const CALL = fc.record({ kind: fc.constantFrom('chat', 'chat', 'chat', 'text'), messages: MESSAGES, prompt: fc.oneof({ weight: 20, arbitrary: TEXT }, fc.constant(undefined), fc.integer()),
  options: OPTIONS, abort: ABORT });

/** Whether `e` is a typed error of intab's (or the platform's AbortError for an aborted signal). */
function typed(e, IntabError) {
  if (e && e.name === 'AbortError') return true;
  return e instanceof IntabError && typeof e.name === 'string' && !['IntabError', 'InternalError', 'Error'].includes(e.name)
    && typeof e.message === 'string' && e.message.length > 0 && typeof e.hint === 'string';
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A call that neither resolves nor rejects in this long is a failure (an abort that never
// releases the engine is one of the faults users report of other runtimes).
const SETTLE_MS = 30_000;
export const log = [];

function settles(p) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`the call did not settle in ${SETTLE_MS / 1000} s`)), SETTLE_MS); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** One call as drawn: 'resolved' | 'rejected:<name>'; throws when the property fails. */
async function callOnce(engine, IntabError, c) {
  log.push(JSON.stringify(c).slice(0, 300));
  return settles(callInner(engine, IntabError, c));
}

async function callInner(engine, IntabError, c) {
  const ac = c.abort === null ? null : new AbortController();
  if (c.abort === -1) ac.abort();
  const req = c.kind === 'chat' ? { ...c.options, messages: c.messages } : { ...c.options, prompt: c.prompt };
  if (c.kind === 'text') { delete req.response_format; delete req.top_logprobs; if (req.logprobs === true) req.logprobs = 2; else delete req.logprobs; }
  if (ac) req.signal = ac.signal;
  let p;
  try {
    p = c.kind === 'chat' ? engine.chat.completions.create(req) : engine.completions.create(req);
  } catch (e) {
    throw new Error(`the call threw synchronously instead of rejecting: ${e?.name}: ${e?.message}`);
  }
  if (!(p instanceof Promise) && typeof p?.then !== 'function') throw new Error('the call returned no promise');
  if (ac && c.abort >= 0) sleep(c.abort).then(() => ac.abort());
  try {
    const r = await p;
    if (req.stream === true) {
      let chunks = 0;
      for await (const chunk of r) {
        chunks += 1;
        if (!chunk || !Array.isArray(chunk.choices)) throw new Error(`a chunk without choices: ${JSON.stringify(chunk)}`);
      }
      return `streamed:${chunks}`;
    }
    if (!r || !Array.isArray(r.choices) || !r.choices[0] || typeof r.choices[0].finish_reason !== 'string') {
      throw new Error(`not a completion: ${JSON.stringify(r)?.slice(0, 200)}`);
    }
    return `resolved:${r.choices[0].finish_reason}`;
  } catch (e) {
    if (!typed(e, IntabError)) {
      const err = new Error(`untyped rejection: ${e?.name}: ${e?.message} (hint: ${e?.hint})`);
      err.untyped = true;
      throw err;
    }
    return `rejected:${e.name}${e.param ? `:${e.param}` : ''}`;
  }
}

const PROBE = { messages: [{ role: 'user', content: 'What is the capital of France?' }], temperature: 0, max_tokens: 8 };
async function probe(engine) {
  if (engine.state !== 'ready') throw new Error(`the engine is ${engine.state}, not ready`);
  return (await engine.chat.completions.create(PROBE)).choices[0].message.content;
}

/** The fixed edge cases: prompts of 0, 1 and max-context tokens, a 1 MB string, NUL, lone surrogates. */
export async function edgeCases(engine, IntabError) {
  const out = {};
  const ctx = engine.info.model.contextWindow;
  const one = async (name, fn) => {
    const t = performance.now();
    log.push(`edge: ${name}`);
    try { const r = await settles(fn()); out[name] = `resolved:${r.choices[0].finish_reason}`; } catch (e) {
      if (!typed(e, IntabError)) throw new Error(`${name}: untyped rejection ${e?.name}: ${e?.message}`);
      out[name] = `rejected:${e.name}`;
    }
    out[`${name} ms`] = Math.round(performance.now() - t);
  };
  await one('prompt of 0 tokens', () => engine.completions.create({ prompt: '', max_tokens: 2, temperature: 0 }));
  const oneTok = (await engine.tokenize('Hello')).length;
  if (oneTok !== 1) throw new Error(`'Hello' is ${oneTok} tokens, not 1`);
  await one('prompt of 1 token', () => engine.completions.create({ prompt: 'Hello', max_tokens: 2, temperature: 0 }));
  // ' a' is one token each in SmolLM2's vocabulary: 'a' + (ctx - 1) x ' a' is ctx tokens.
  const full = 'a' + ' a'.repeat(ctx - 1);
  const n = (await engine.tokenize(full)).length;
  out['max-context prompt tokens'] = n;
  await one('prompt of max-context tokens', () => engine.completions.create({ prompt: full, max_tokens: 2, temperature: 0 }));
  await one('1 MB message', () => engine.chat.completions.create({ messages: [{ role: 'user', content: 'x'.repeat(1 << 20) }], max_tokens: 2 }));
  await one('1 MB message, drop_oldest', () => engine.chat.completions.create({ messages: [{ role: 'user', content: 'x'.repeat(1 << 20) }], max_tokens: 2, context_overflow: 'drop_oldest' }));
  await one('NUL', () => engine.chat.completions.create({ messages: [{ role: 'user', content: 'a\0b\0' }], max_tokens: 2 }));
  await one('lone surrogates', () => engine.chat.completions.create({ messages: [{ role: 'user', content: '\uD800 \uDC00 \uDBFF' }], max_tokens: 2 }));
  await one('stop of lone surrogate', () => engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, stop: ['\uD800'] }));
  return out;
}

/** Run the property `numRuns` times from `seed`; resolves with a summary, or rejects with the
 * shrunk counterexample (fast-check's report). */
export async function fuzz(engine, IntabError, { numRuns = 60, seed = 42, probeEvery = 10 } = {}) {
  const before = await probe(engine);
  const outcomes = {};
  let runs = 0;
  const t0 = performance.now();
  await fc.assert(fc.asyncProperty(CALL, async (c) => {
    const o = await callOnce(engine, IntabError, c);
    const k = o.replace(/^streamed:\d+$/, 'streamed');
    outcomes[k] = (outcomes[k] || 0) + 1;
    runs += 1;
    if (engine.state !== 'ready') throw new Error(`after ${o} the engine is ${engine.state}`);
    if (runs % probeEvery === 0) {
      const now = await probe(engine);
      if (now !== before) throw new Error(`the probe answers ${JSON.stringify(now)}, not ${JSON.stringify(before)} as before the fuzz`);
    }
  }), { numRuns, seed, endOnFailure: true });
  const after = await probe(engine);
  if (after !== before) throw new Error(`after the fuzz the probe answers ${JSON.stringify(after)}, not ${JSON.stringify(before)}`);
  return { runs, seconds: (performance.now() - t0) / 1000, outcomes, probe: before };
}
