// The soak (issue 14, items 1 and 7), run in the page through the public API by
// tests/browser/test_soak.py (short) and `build.py soak` (200 turns, 50 conversations):
// one long conversation and many conversations on one engine, memory by turn, and sampled
// greedy answers replayed on a fresh engine, which must give the same text.
//
// Memory: the renderer process's resident set where the host gives it (`build.py soak` exposes
// intabHostRss(), read from /proc: the page, its worker, Pyodide, the wasm memories, all of it, at
// once), else performance.measureUserAgentSpecificMemory() (the page and its workers: it needs
// cross-origin isolation, which intab's server gives), else the page's JS heap. Chromium answers
// measureUserAgentSpecificMemory at a garbage collection of its choosing: ~60 s a measurement in
// this headless Chromium even with --enable-blink-features=ForceEagerMeasureMemory, which made
// 200 turns with 20 measurements take over 70 minutes.

export async function memory() {
  if (typeof self.intabHostRss === 'function') return { bytes: await self.intabHostRss(), source: 'renderer RSS' };
  if (self.crossOriginIsolated && performance.measureUserAgentSpecificMemory) {
    const m = await performance.measureUserAgentSpecificMemory();
    return { bytes: m.bytes, source: 'measureUserAgentSpecificMemory' };
  }
  return { bytes: performance.memory?.usedJSHeapSize ?? null, source: 'usedJSHeapSize' };
}

const ask = (engine, messages, maxTokens) => engine.chat.completions.create({
  messages, temperature: 0, max_tokens: maxTokens, context_overflow: 'drop_oldest',
});

/** `turns` turns of one conversation; memory every `every` turns; the requests of `sample` kept. */
export async function longConversation(engine, { turns = 200, maxTokens = 16, every = 10, sample = [] } = {}) {
  const messages = [];
  const curve = [];
  const samples = [];
  const t0 = performance.now();
  for (let i = 0; i < turns; i++) {
    messages.push({ role: 'user', content: `Tell me one short fact about the number ${i + 1}.` });
    const req = structuredClone(messages);
    const r = await ask(engine, req, maxTokens);
    const text = r.choices[0].message.content;
    if (sample.includes(i)) samples.push({ turn: i, messages: req, text });
    messages.push({ role: 'assistant', content: text });
    if (i % every === 0 || i === turns - 1) {
      curve.push({ turn: i + 1, ...(await memory()), prompt_tokens: r.usage.prompt_tokens, dropped: r.intab?.dropped_messages ?? 0,
        reused: r.intab?.reused_tokens ?? null, s: +((performance.now() - t0) / 1000).toFixed(1) });
    }
  }
  return { curve, samples };
}

/** `conversations` conversations, `turnsEach` turns each, taken in turn (round robin): each answer
 * restores that conversation's KV from a snapshot, or prefills it again. */
export async function manyConversations(engine, { conversations = 50, turnsEach = 3, maxTokens = 8, sample = [] } = {}) {
  const convs = Array.from({ length: conversations }, () => []);
  const curve = [];
  const samples = [];
  const t0 = performance.now();
  for (let round = 0; round < turnsEach; round++) {
    for (let c = 0; c < conversations; c++) {
      const m = convs[c];
      m.push({ role: 'user', content: round === 0 ? `My name is Person ${c + 1}. Say hello.` : `Say one more word, Person ${c + 1}.` });
      const req = structuredClone(m);
      const r = await ask(engine, req, maxTokens);
      const text = r.choices[0].message.content;
      if (sample.includes(c) && round === turnsEach - 1) samples.push({ conversation: c, messages: req, text });
      m.push({ role: 'assistant', content: text });
      if (c % 10 === 9 || c === conversations - 1) {
        curve.push({ round: round + 1, conversation: c + 1, ...(await memory()), restored: r.intab?.restored_tokens ?? null,
          s: +((performance.now() - t0) / 1000).toFixed(1) });
      }
    }
  }
  return { curve, samples };
}

/** The kept requests on `engine` (a fresh one): [{where, expected, got}] for each that differs. */
export async function replay(engine, samples, maxTokens) {
  const bad = [];
  for (const s of samples) {
    const r = await ask(engine, s.messages, maxTokens);
    const got = r.choices[0].message.content;
    if (got !== s.text) bad.push({ where: s.turn ?? s.conversation, expected: s.text, got });
  }
  return bad;
}
