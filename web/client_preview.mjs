// PROVISIONAL, to be deleted when web/client.mjs (the lead's public client, issue 10.1-10.5)
// lands: the subset of its API that <intab-chat> and the demo page use, over today's worker
// protocol (web/worker.mjs), so that the element and the page can be built and tested end to end
// before it exists. Same shapes as the client's: create(options) -> engine; engine.info;
// engine.chat.completions.create({messages, stream: true, signal, ...options}) -> async iterable
// of chat.completion.chunk objects, the last with finish_reason, usage and `intab`;
// engine.interruptGenerate(); engine.unload(); rejections are IntabError {name, message, hint, param}.

export class IntabError extends Error {
  constructor(name, message, { hint = '', param } = {}) {
    super(message);
    this.name = name;
    this.hint = hint;
    if (param !== undefined) this.param = param;
  }
}

const OPTION_KEYS = ['max_tokens', 'temperature', 'top_p', 'top_k', 'min_p', 'repetition_penalty', 'seed', 'stop'];

export async function create(options = {}) {
  const { onProgress, signal, model, backend = 'auto', kernel, threads, memory } = options;
  const worker = new Worker(new URL('./worker.mjs', import.meta.url), { type: 'module', name: 'intab-engine' });
  const turns = new Map();   // id -> {push(msg)}
  let nextId = 1;
  let dead = null;
  const info = await new Promise((resolve, reject) => {
    const fail = (err) => { dead = err; worker.terminate(); reject(err); };
    signal?.addEventListener('abort', () => fail(new IntabError('AbortError', 'the load was aborted')), { once: true });
    worker.onerror = (ev) => {
      ev.preventDefault?.();
      fail(new IntabError('WorkerError', ev.message || 'the engine worker failed to start',
        { hint: 'serve the page over http(s) from the folder build.py assembles (static/)' }));
    };
    worker.onmessage = ({ data: m }) => {
      if (m.type === 'progress') onProgress?.(m);
      else if (m.type === 'ready') resolve(m);
      else if (m.type === 'error' && m.fatal) fail(new IntabError(m.name, m.message));
      else turns.get(m.id)?.push(m);
    };
    worker.postMessage({ type: 'load', backend, kernel, model, threads, memory });
  });
  worker.onmessage = ({ data: m }) => turns.get(m.id)?.push(m);

  async function* run(body) {
    const id = nextId++;
    const queue = [];
    let wake = null;
    turns.set(id, { push: (m) => { queue.push(m); wake?.(); } });
    const opts = {};
    for (const k of OPTION_KEYS) if (body[k] !== undefined) opts[k] = body[k];
    const stop = () => worker.postMessage({ type: 'stop', id });
    body.signal?.addEventListener('abort', stop, { once: true });
    worker.postMessage({ type: 'chat', id, messages: body.messages, options: opts });
    const t = Math.floor(Date.now() / 1000);
    const base = { id: `chatcmpl-${id}`, object: 'chat.completion.chunk', created: t, model: info.model?.id };
    try {
      let first = true;
      for (;;) {
        while (!queue.length) await new Promise((r) => { wake = r; });
        const m = queue.shift();
        if (m.type === 'delta') {
          yield { ...base, choices: [{ index: 0, delta: first ? { role: 'assistant', content: m.text } : { content: m.text }, logprobs: null, finish_reason: null }] };
          first = false;
        } else if (m.type === 'done') {
          const r = m.result || {};
          const usage = { prompt_tokens: r.prompt_tokens ?? 0, completion_tokens: r.new_tokens ?? (r.token_ids || []).length,
            total_tokens: (r.prompt_tokens ?? 0) + (r.new_tokens ?? 0) };
          yield { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: r.finish_reason || 'stop' }], usage,
            intab: { token_ids: r.token_ids || [], ttft_ms: r.ttft_ms, prefill_tok_s: r.prefill_tok_s, decode_tok_s: r.decode_tok_s, reused_tokens: r.reused_tokens } };
          return;
        } else if (m.type === 'error') {
          throw new IntabError(m.name, m.message);
        }
      }
    } finally {
      turns.delete(id);
      body.signal?.removeEventListener('abort', stop);
    }
  }

  return {
    info,
    chat: {
      completions: {
        async create(body) {
          if (dead) throw new IntabError('InvalidStateError', 'the engine was unloaded');
          if (!body.stream) throw new IntabError('InvalidParameter', 'the preview client streams only', { param: 'stream' });
          return run(body);
        },
      },
    },
    interruptGenerate() { for (const id of turns.keys()) worker.postMessage({ type: 'stop', id }); },
    async unload() { dead = new IntabError('InvalidStateError', 'the engine was unloaded'); worker.terminate(); },
  };
}
