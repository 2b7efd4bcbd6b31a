// Every message between a page (web/client.mjs) and the engine's worker (web/worker.mjs). Both
// sides import this module: a message is built with `message(type, fields)`, which refuses a
// type or a field this table does not know, and read with `expect(msg, side)`.
//
// Ids: every request carries an `id` chosen by the page; every answer to it carries the same id.
// The worker runs generations one at a time, in arrival order (the engine holds one live KV
// cache and snapshots of other conversations); other calls answer at once.

export const VERSION = 2;

/** page -> worker */
export const TO_WORKER = {
  // Start the engine. options: {model (an id, 'kept:<name>', a GGUF Blob or URL), keep, backend: 'auto'|'wasm'|'webgpu', kernel: 'auto'|'intab'|'ort',
  //   threads, memory: 'fast'|'low', adapter: 'hardware'|'any', python: true|false (false: the model
  //   runtime alone, for Python in the page's own Pyodide), profiling, ortOptions, base}
  //   + lifeline: the name of a Web Lock the worker takes before anything else and holds while it
  //   lives, so the page learns of its end however it came (an out-of-memory kill, close()).
  load: ['options'],
  // kind 'chat' (payload: messages [{role, content}]) or 'complete' (payload: prompt text);
  // options: GenerationConfig fields (py/intab/config.py). Answered by delta* then done, or error.
  generate: ['id', 'kind', 'payload', 'options'],
  // End generation `id` (running: after the current step, finish_reason 'abort'; queued: at once).
  abort: ['id'],
  // Engine calls answered by reply or error: tokenize {text, addSpecialTokens}, detokenize {ids,
  // skipSpecialTokens}, count_tokens {messages}, apply_chat_template {messages, addGenerationPrompt},
  // reset {} (forget every conversation's KV).
  call: ['id', 'method', 'args'],
  // The bridge itself (load with python: false): forward {ids, start, k}, truncate {n}, snapshot {}
  // (reply: {handle, length, bytes}), restore {handle}, release_snapshot {handle}.
  bridge: ['id', 'method', 'args'],
  'end-profiling': ['id'],   // after a load with profiling: true: onnxruntime's per-node profile
};

/** worker -> page */
export const FROM_WORKER = {
  // phase 'boot'|'download'|'init'; download: loaded, total, eta, rate, files [{name, loaded,
  // total, cached, source, eta, done}], notices [lines], fromMemory, otherTab
  progress: ['phase', 'message'],
  // backend, backendReason, fallback, kernel, kernelReason, threads, crossOriginIsolated,
  // adapterInfo, shaderF16, model {id, version, numCandidates, config, contextWindow, vocabSize,
  // chatTemplate, source (a GGUF opened in the tab: {kind, name, kept}, else null)}, generationConfig, defaults, loadMs, timings, timeline {origin, spans: {phase:
  // [start, end] ms on the worker clock}} (web/timeline.mjs), fromCache, ortBundle, memory,
  // files (python: false: the model's JSON texts)
  ready: ['backend', 'kernel', 'threads', 'model'],
  // A generation was checked (options, template, tokens, context) and waits its turn; a bad one
  // gets an error instead, at once, before any earlier generation is done.
  queued: ['id', 'prompt_tokens'],           // + dropped_messages
  delta: ['id', 'text', 'token_ids'],       // + logprobs when asked, + tool_calls on the last one with calls
  done: ['id', 'result'],                    // result: contracts.md §4
  reply: ['id', 'value'],
  error: ['id', 'error', 'fatal'],           // error: {name, message, hint, param}; fatal: the engine could not load
  profiling: ['id', 'events'],
  // The worker's own requests and CSP violations as they happen (web/privacy.mjs): requests
  // [{url, at, initiator}], violations [{url, directive, at}]; at: ms since the epoch.
  privacy: ['requests', 'violations'],
};

export class ProtocolError extends Error {
  constructor(message) { super(message); this.name = 'ProtocolError'; }
}

/** A message of `type` with `fields`; throws if the type is unknown or a required field is missing. */
export function message(type, fields = {}) {
  const need = TO_WORKER[type] || FROM_WORKER[type];
  if (!need) throw new ProtocolError(`unknown message type '${type}'`);
  for (const f of need) {
    if (!(f in fields)) throw new ProtocolError(`message '${type}' needs '${f}'`);
  }
  return { type, ...fields };
}

/** Check a received message against the side it came from ('page' or 'worker'); returns it. */
export function expect(msg, from) {
  const table = from === 'page' ? TO_WORKER : FROM_WORKER;
  if (!msg || typeof msg !== 'object' || !(msg.type in table)) {
    throw new ProtocolError(`unknown message type '${msg && msg.type}' from the ${from}`);
  }
  for (const f of table[msg.type]) {
    if (!(f in msg)) throw new ProtocolError(`message '${msg.type}' from the ${from} lacks '${f}'`);
  }
  return msg;
}
