// OpenAI-compatible chat and text completions over Engine.generate (web/client.mjs): the same
// request fields, response objects and stream chunks as OpenAI's API (and WebLLM's), so code
// written for either runs here. Every field is either supported or refused with a typed error
// that names it (UnsupportedParameter / InvalidParameter); none is silently ignored.

import { IntabError, InvalidParameterError } from './errors.mjs';

// request field -> engine option (py/intab/config.py's GenerationConfig)
const SAMPLING = {
  max_tokens: 'max_tokens', max_completion_tokens: 'max_tokens', temperature: 'temperature', top_p: 'top_p',
  top_k: 'top_k', min_p: 'min_p', repetition_penalty: 'repetition_penalty', seed: 'seed', stop: 'stop',
  ignore_eos: 'ignore_eos', context_overflow: 'context_overflow',
};
const COMMON = ['model', 'stream', 'stream_options', 'signal', 'n', ...Object.keys(SAMPLING)];
const CHAT_FIELDS = new Set([...COMMON, 'messages', 'logprobs', 'top_logprobs', 'response_format', 'tools', 'tool_choice',
  'parallel_tool_calls']);
const TEXT_FIELDS = new Set([...COMMON, 'prompt', 'logprobs', 'echo']);

// Fields of OpenAI's API that intab does not do, and why (the error's hint).
const UNSUPPORTED = {
  frequency_penalty: 'Use repetition_penalty (transformers\' definition), which intab applies exactly.',
  presence_penalty: 'Use repetition_penalty (transformers\' definition), which intab applies exactly.',
  logit_bias: 'Pass a logits processor from the Python API, or use a response_format constraint.',
  functions: 'Use tools.', function_call: 'Use tool_choice.',
  audio: 'intab runs text models only.', modalities: 'intab runs text models only.',
  prediction: 'Predicted outputs are not supported.', reasoning_effort: 'Not a reasoning model.',
  service_tier: 'Everything runs in this tab.', store: 'Nothing is stored anywhere: it all stays in this tab.',
  metadata: 'Nothing is stored anywhere: it all stays in this tab.', user: 'There is no server to tell.',
  web_search_options: 'intab makes no request outside the page.', best_of: 'Only one completion is generated.',
  suffix: 'Insertion is not supported.',
};

const unsupported = (field, why) => new IntabError(`'${field}' is not supported`, { name: 'UnsupportedParameter', param: field, hint: why });
const invalid = (field, rule) => new InvalidParameterError(field, `${field} is invalid: it must be ${rule}`);

function checkFields(req, allowed, what) {
  if (!req || typeof req !== 'object' || Array.isArray(req)) throw new InvalidParameterError('request', `${what} takes one object of fields`);
  for (const [k, v] of Object.entries(req)) {
    if (v === undefined) continue;
    if (k in UNSUPPORTED && v !== null) throw unsupported(k, UNSUPPORTED[k]);
    if (!allowed.has(k)) throw new InvalidParameterError(k, `unknown field '${k}'`, `${what} takes ${[...allowed].sort().join(', ')}.`);
  }
}

/** The request's sampling fields as engine options; the engine checks their ranges. */
function options(req, engine) {
  if (req.model != null && req.model !== engine.info.model.id) {
    throw new InvalidParameterError('model', `model '${req.model}' is not the one this engine runs ('${engine.info.model.id}')`,
      'Leave model out, or create an engine for that model with intab.create({model}).');
  }
  if (req.n != null && req.n !== 1) throw unsupported('n', 'One answer per request: send several requests (they queue).');
  if (req.stream != null && typeof req.stream !== 'boolean') throw invalid('stream', 'true or false');
  const so = req.stream_options;
  if (so != null) {
    if (typeof so !== 'object' || Object.keys(so).some((k) => k !== 'include_usage')) throw invalid('stream_options', '{include_usage: boolean}');
    if (!req.stream) throw new InvalidParameterError('stream_options', 'stream_options needs stream: true');
  }
  const out = {};
  for (const [field, opt] of Object.entries(SAMPLING)) {
    const v = req[field];
    if (v === undefined || v === null) continue;
    if (field === 'stop') {
      if (!(typeof v === 'string' || (Array.isArray(v) && v.every((s) => typeof s === 'string')))) throw invalid('stop', 'a string or a list of strings');
    } else if (field === 'ignore_eos') {
      if (typeof v !== 'boolean') throw invalid(field, 'true or false');
    } else if (field === 'context_overflow') {
      if (!['error', 'drop_oldest'].includes(v)) throw invalid(field, "'error' or 'drop_oldest'");
    } else if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw invalid(field, 'a number');
    }
    out[opt] = v;
  }
  if (req.signal != null && !(req.signal instanceof AbortSignal)) throw invalid('signal', 'an AbortSignal');
  return out;
}

function text(content, where) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((part, i) => {
      if (part && part.type === 'text' && typeof part.text === 'string') return part.text;
      throw unsupported(`${where}.content[${i}]`, `Only text parts ({type: 'text', text}) are supported, not '${part && part.type}'.`);
    }).join('');
  }
  throw new InvalidParameterError(`${where}.content`, `${where}.content must be a string or a list of text parts`);
}

const ROLES = ['system', 'developer', 'user', 'assistant', 'tool'];

/** OpenAI messages -> the engine's [{role, content}] (text parts joined; 'developer' is 'system'). */
export function toMessages(messages) {
  if (!Array.isArray(messages) || !messages.length) throw new InvalidParameterError('messages', 'messages must be a non-empty list');
  return messages.map((m, i) => {
    const where = `messages[${i}]`;
    if (!m || typeof m !== 'object') throw new InvalidParameterError(where, `${where} must be an object {role, content}`);
    if (!ROLES.includes(m.role)) throw new InvalidParameterError(`${where}.role`, `${where}.role must be one of ${ROLES.join(', ')}`);
    for (const k of Object.keys(m)) {
      if (!['role', 'content', 'name', 'tool_calls', 'tool_call_id'].includes(k)) throw new InvalidParameterError(`${where}.${k}`, `unknown message field '${k}'`);
    }
    const out = { role: m.role === 'developer' ? 'system' : m.role, content: m.content == null && m.role === 'assistant' ? '' : text(m.content, where) };
    if (m.name != null) out.name = String(m.name);
    if (m.tool_calls != null) {
      if (m.role !== 'assistant') throw new InvalidParameterError(`${where}.tool_calls`, 'only an assistant message carries tool_calls');
      out.tool_calls = toolCalls(m.tool_calls, `${where}.tool_calls`);
    }
    if (m.role === 'tool') {
      if (typeof m.tool_call_id !== 'string') throw new InvalidParameterError(`${where}.tool_call_id`, 'a tool message needs the tool_call_id of the call it answers');
      out.tool_call_id = m.tool_call_id;
    } else if (m.tool_call_id != null) {
      throw new InvalidParameterError(`${where}.tool_call_id`, 'only a tool message carries tool_call_id');
    }
    return out;
  });
}

/** An assistant message's tool_calls as the model made them (message.tool_calls of an earlier answer). */
function toolCalls(calls, where) {
  if (!Array.isArray(calls)) throw new InvalidParameterError(where, `${where} must be a list of {id, type: 'function', function: {name, arguments}}`);
  return calls.map((c, i) => {
    const f = c && c.function;
    if (!c || c.type !== 'function' || typeof c.id !== 'string' || !f || typeof f.name !== 'string' || typeof f.arguments !== 'string') {
      throw new InvalidParameterError(`${where}[${i}]`, `${where}[${i}] must be {id, type: 'function', function: {name, arguments: a JSON string}}`);
    }
    return { id: c.id, type: 'function', function: { name: f.name, arguments: f.arguments } };
  });
}

/** tools and tool_choice go to the engine, which checks them field by field (py/intab/tools.py). */
function toolOptions(req) {
  const out = {};
  if (req.parallel_tool_calls != null && req.parallel_tool_calls !== false) {
    throw unsupported('parallel_tool_calls', 'Tool calls come one at a time: leave parallel_tool_calls out, or set it to false.');
  }
  if (req.tools != null) out.tools = req.tools;
  if (req.tool_choice != null) out.tool_choice = req.tool_choice;
  return out;
}

/** The answer as OpenAI's assistant message: with tool_calls, content is the text before them (or null). */
function assistantMessage(r) {
  if (r.tool_calls?.length) return { role: 'assistant', content: r.text || null, tool_calls: r.tool_calls };
  return { role: 'assistant', content: r.text };
}

const stamp = () => Math.floor(Date.now() / 1000);
const newId = (prefix) => `${prefix}-${Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('')}`;

function usage(r) {
  const extra = {
    time_to_first_token_s: r.ttft_ms / 1000, prefill_tokens_per_s: r.prefill_tok_s, decode_tokens_per_s: r.decode_tok_s,
  };
  return { prompt_tokens: r.prompt_tokens, completion_tokens: r.new_tokens, total_tokens: r.prompt_tokens + r.new_tokens, extra };
}

/** intab's own figures, beside the OpenAI fields. */
function intabFields(r) {
  return {
    token_ids: r.token_ids, stop_reason: r.stop_reason, stop_token: r.stop_token ?? null, reused_tokens: r.reused_tokens,
    restored_tokens: r.restored_tokens, dropped_messages: r.dropped_messages, ttft_ms: r.ttft_ms, prefill_tok_s: r.prefill_tok_s,
    decode_tok_s: r.decode_tok_s, confidence: r.confidence, token_confidence: r.token_confidence, profile: r.profile ?? null,
  };
}

/** One token's logprobs entry in OpenAI's chat shape. */
const lpEntry = (e) => ({
  token: e.token, logprob: e.logprob, bytes: e.bytes,
  top_logprobs: e.top_logprobs.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
});

function checkLogprobs(req) {
  if (req.logprobs != null && typeof req.logprobs !== 'boolean') throw invalid('logprobs', 'true or false');
  if (req.top_logprobs != null && !(Number.isInteger(req.top_logprobs) && req.top_logprobs >= 0 && req.top_logprobs <= 20)) {
    throw invalid('top_logprobs', 'an integer from 0 to 20');
  }
  if (req.top_logprobs && !req.logprobs) throw new InvalidParameterError('top_logprobs', 'top_logprobs needs logprobs: true');
  return req.logprobs ? { logprobs: true, top_logprobs: req.top_logprobs || 0 } : {};
}

/** engine.chat.completions.create(request) */
export function chatCompletion(engine, req) {
  try {
    checkFields(req, CHAT_FIELDS, 'chat.completions.create');
    const messages = toMessages(req.messages);
    const opts = { ...options(req, engine), ...checkLogprobs(req), ...toolOptions(req) };
    // checked and compiled by the engine (py/intab/constrain): an unsupported schema keyword is
    // an InvalidParameter naming it, before any token
    if (req.response_format != null) opts.response_format = req.response_format;
    const meta = { id: newId('chatcmpl'), created: stamp(), model: engine.info.model.id };
    if (!req.stream) {
      return engine.generate('chat', messages, opts, { signal: req.signal }).then((r) => ({
        ...meta, object: 'chat.completion', system_fingerprint: null,
        choices: [{ index: 0, message: assistantMessage(r), logprobs: r.logprobs ? { content: r.logprobs.map(lpEntry) } : null, finish_reason: r.finish_reason }],
        usage: usage(r), intab: intabFields(r),
      }));
    }
    const chunk = (delta, finish = null, logprobs = null) => ({
      ...meta, object: 'chat.completion.chunk', system_fingerprint: null,
      choices: [{ index: 0, delta, logprobs, finish_reason: finish }],
    });
    return stream(engine, 'chat', messages, opts, req, {
      first: () => chunk({ role: 'assistant', content: '' }),
      // a call comes whole in one delta ({index, id, type, function: {name, arguments}}), once it is complete
      delta: (d) => chunk(d.tool_calls ? { ...(d.text ? { content: d.text } : {}), tool_calls: d.tool_calls } : { content: d.text }, null,
        d.logprobs ? { content: d.logprobs.map(lpEntry) } : null),
      last: (r) => ({ ...chunk({}, r.finish_reason), intab: intabFields(r) }),
      usage: (r) => ({ ...meta, object: 'chat.completion.chunk', system_fingerprint: null, choices: [], usage: usage(r) }),
    });
  } catch (err) {
    return Promise.reject(err);
  }
}

/** engine.completions.create(request): plain text completion (base models), OpenAI's legacy shape. */
export function textCompletion(engine, req) {
  try {
    checkFields(req, TEXT_FIELDS, 'completions.create');
    if (typeof req.prompt !== 'string') throw new InvalidParameterError('prompt', 'prompt must be a string');
    if (req.echo) throw unsupported('echo', 'The answer does not repeat the prompt; prepend it yourself.');
    if (req.logprobs != null && !(Number.isInteger(req.logprobs) && req.logprobs >= 0 && req.logprobs <= 5)) {
      throw invalid('logprobs', 'an integer from 0 to 5 (alternatives per token)');
    }
    const opts = { ...options(req, engine), ...(req.logprobs != null ? { logprobs: true, top_logprobs: req.logprobs } : {}) };
    const meta = { id: newId('cmpl'), created: stamp(), model: engine.info.model.id };
    const legacy = (lps, offset0 = 0) => {
      if (!lps) return null;
      let offset = offset0;
      const text_offset = lps.map((e) => { const o = offset; offset += e.token.length; return o; });
      return { tokens: lps.map((e) => e.token), token_logprobs: lps.map((e) => e.logprob), text_offset,
        top_logprobs: lps.map((e) => Object.fromEntries(e.top_logprobs.map((t) => [t.token, t.logprob]))) };
    };
    if (!req.stream) {
      return engine.generate('complete', req.prompt, opts, { signal: req.signal }).then((r) => ({
        ...meta, object: 'text_completion', system_fingerprint: null,
        choices: [{ index: 0, text: r.text, logprobs: legacy(r.logprobs), finish_reason: r.finish_reason }],
        usage: usage(r), intab: intabFields(r),
      }));
    }
    let offset = 0;
    const chunk = (textPart, finish = null, logprobs = null) => ({
      ...meta, object: 'text_completion', system_fingerprint: null, choices: [{ index: 0, text: textPart, logprobs, finish_reason: finish }],
    });
    return stream(engine, 'complete', req.prompt, opts, req, {
      first: null,
      delta: (d) => { const c = chunk(d.text, null, legacy(d.logprobs, offset)); offset += d.text.length; return c; },
      last: (r) => ({ ...chunk('', r.finish_reason), intab: intabFields(r) }),
      usage: (r) => ({ ...meta, object: 'text_completion', system_fingerprint: null, choices: [], usage: usage(r) }),
    });
  } catch (err) {
    return Promise.reject(err);
  }
}

/** An async iterable of chunks, once the request is accepted (a bad one rejects here, as an HTTP
 * API answers 400 before it streams). Leaving the loop early (break, return, throw) aborts the answer. */
async function stream(engine, kind, payload, opts, req, make) {
  const queue = [];
  let wake = null, finished = false, failure = null;
  const push = (c) => { queue.push(c); wake?.(); };
  const ctrl = new AbortController();
  const onOuter = () => ctrl.abort(req.signal.reason);
  if (req.signal) {
    if (req.signal.aborted) ctrl.abort(req.signal.reason);
    else req.signal.addEventListener('abort', onOuter, { once: true });
  }
  let accept;
  const accepted = new Promise((resolve, reject) => { accept = { resolve, reject }; });
  const done = engine.generate(kind, payload, opts, {
    signal: ctrl.signal,
    onQueued: () => accept.resolve(),
    onDelta: (d) => { if (d.text || d.logprobs?.length || d.tool_calls?.length) push(make.delta(d)); },
  }).then((r) => {
    accept.resolve();
    push(make.last(r));
    if (req.stream_options?.include_usage) push(make.usage(r));
  }, (err) => { failure = err; accept.reject(err); }).finally(() => {
    finished = true;
    req.signal?.removeEventListener('abort', onOuter);
    wake?.();
  });
  done.catch(() => {});
  await accepted;
  if (make.first) queue.unshift(make.first());
  return {
    [Symbol.asyncIterator]() { return this; },
    async next() {
      for (;;) {
        if (queue.length) return { value: queue.shift(), done: false };
        if (failure) { const e = failure; failure = null; throw e; }
        if (finished) return { value: undefined, done: true };
        await new Promise((r) => { wake = r; });
        wake = null;
      }
    },
    async return() {
      if (!finished) ctrl.abort();
      await done;
      queue.length = 0;
      return { value: undefined, done: true };
    },
    /** Stop the answer without leaving the loop (it ends with finish_reason 'abort'). */
    abort() { ctrl.abort(); },
  };
}
