// Test harness page (tests/browser/test_element.py): intab's renderer and <intab-chat>, as a
// host page imports them from its copy of static/ (./lib/intab/), with hooks the test calls.
import { ALLOWED_ATTR, ALLOWED_TAGS, LINK_ATTR, MarkdownView, SAFE_URL, createMarkdown } from './lib/intab/markdown.mjs';
import './lib/intab/element.mjs';

const violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  violations.push({ directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample });
}, true);
if (typeof ReportingObserver === 'function') {
  new ReportingObserver((reports) => {
    for (const r of reports) violations.push({ directive: r.body?.effectiveDirective, blocked: r.body?.blockedURL, sample: r.body?.sample, via: 'report' });
  }, { types: ['csp-violation'], buffered: true }).observe();
}

const md = createMarkdown();
const direct = document.getElementById('direct');
const chat = document.getElementById('chat');

/** Everything under `root` that is not what the renderer may produce. */
function audit(root) {
  const problems = [];
  const tags = new Set(ALLOWED_TAGS.map((t) => t.toUpperCase()));
  const attrs = new Set([...ALLOWED_ATTR, ...Object.keys(LINK_ATTR)]);
  for (const el of root.querySelectorAll('*')) {
    const where = `<${el.localName}> in ${(el.closest('[data-case]')?.dataset.case) ?? '?'}`;
    const ours = el.localName === 'div' && el.className === 'md-block';
    if (!ours && (!tags.has(el.tagName) || el.namespaceURI !== 'http://www.w3.org/1999/xhtml')) problems.push(`element ${where}`);
    for (const a of el.attributes) {
      if (ours && a.name === 'class') continue;
      if (!attrs.has(a.name)) problems.push(`attribute ${a.name}="${a.value}" on ${where}`);
    }
    if (el.localName === 'a' && el.hasAttribute('href')) {
      if (!SAFE_URL.test(el.getAttribute('href'))) problems.push(`href ${el.getAttribute('href')} on ${where}`);
      for (const [k, v] of Object.entries(LINK_ATTR)) if (el.getAttribute(k) !== v) problems.push(`${k}=${el.getAttribute(k)} on a link in ${where}`);
    } else if (el.localName === 'a' && (el.hasAttribute('target') || el.hasAttribute('rel'))) {
      problems.push(`target/rel on a link without href in ${where}`);
    }
  }
  return problems;
}

function renderDirect(items) {
  direct.replaceChildren();
  for (const [name, text] of items) {
    const box = document.createElement('div');
    box.dataset.case = name;
    box.append(md.render(text));
    direct.append(box);
  }
  return { problems: [...direct.children].flatMap((b) => audit(b)), texts: Object.fromEntries([...direct.children].map((b) => [b.dataset.case, b.textContent])) };
}

function renderInElement(items) {
  chat.messages = items.flatMap(([, text]) => [{ role: 'user', content: text }, { role: 'assistant', content: text }]);
  const root = chat.shadowRoot;
  const contents = [...root.querySelectorAll('.msg.assistant .content')];
  contents.forEach((c, i) => { c.dataset.case = items[i][0]; });
  const problems = contents.flatMap((c) => audit(c).map((p) => p.replace(/ in \?$/, ` in ${c.dataset.case}`)));
  // The user's own text is shown as typed: text only, no element at all.
  const users = [...root.querySelectorAll('.msg.user .content')];
  users.forEach((u, i) => {
    if (u.children.length || u.textContent !== items[i][1]) problems.push(`user message of ${items[i][0]} is not its plain text`);
  });
  contents.forEach((c) => { delete c.dataset.case; });
  return { problems, messages: chat.messages.length };
}

/** Feed `text` to a MarkdownView `step` characters at a time, rendering after each (as deltas
 * landing in separate frames would); compare what it shows, before and after finish(), with one
 * full render of the text. */
function stream(text, step) {
  const box = document.createElement('div');
  document.body.append(box);
  const view = new MarkdownView(box, md);
  let updates = 0;
  let worst = 0;
  const times = [];
  for (let n = step; n < text.length + step; n += step) {
    view.text = text.slice(0, n);
    const t0 = performance.now();
    view.flush();
    times.push(performance.now() - t0);
    updates++;
  }
  const full = document.createElement('div');
  for (const b of md.blocks(text)) {
    const d = document.createElement('div');
    d.className = 'md-block';
    d.append(md.sanitize(b.html));
    full.append(d);
  }
  const streamed = box.innerHTML === full.innerHTML;
  const before = view.renders;
  view.finish(text);
  const finished = box.innerHTML === full.innerHTML;
  times.sort((a, b) => a - b);
  worst = times[times.length - 1];
  const t0 = performance.now();
  md.blocks(text);
  const fullMs = performance.now() - t0;
  const out = {
    updates, renders: before, finishRenders: view.renders - before, blocks: box.children.length, streamed, finished,
    problems: audit(box), medianMs: times[times.length >> 1], worstMs: worst, fullMs,
  };
  box.remove();
  return out;
}

/** An engine that streams `text` in `step`-character chunks, one per `ms`: a stand-in that lets the
 * element's own behaviour (scrolling, streaming render) be checked without loading a model. */
function scriptedEngine(text, step = 4, ms = 15) {
  return {
    info: { backend: 'wasm', threads: 1, kernel: 'intab', crossOriginIsolated: true, loadMs: 0, model: { id: 'scripted' } },
    chat: { completions: { async create(req) {
      return (async function* () {
        for (let i = 0; i < text.length; i += step) {
          if (req.signal?.aborted) break;
          await new Promise((r) => setTimeout(r, ms));
          yield { object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: text.slice(i, i + step) }, finish_reason: null }] };
        }
        const reason = req.signal?.aborted ? 'abort' : 'stop';
        yield { object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: reason }], intab: { token_ids: [], ttft_ms: ms, decode_tok_s: 1000 / ms } };
      })();
    } } },
  };
}

/** Stream `text` into the element through a scripted engine; where the log was scrolled while it
 * grew (read `at` ms in), and at the end. `scrollUpAt`: the reader scrolls to the top then. */
async function scrolling(text, scrollUpAt = null) {
  chat.messages = [];
  chat.engine = scriptedEngine(text);
  const log = chat.shadowRoot.getElementById('log');
  const gap = () => log.scrollHeight - log.scrollTop - log.clientHeight;
  const samples = [];
  const timer = setInterval(() => samples.push(gap()), 50);
  if (scrollUpAt !== null) setTimeout(() => { log.scrollTop = 0; }, scrollUpAt);
  const r = await chat.send('Tell me a long story.');
  await new Promise((res) => requestAnimationFrame(() => res()));
  clearInterval(timer);
  return { finish: r.finish_reason, overflow: log.scrollHeight > log.clientHeight + 100, samples, end: gap(), top: log.scrollTop };
}

window.harness = { violations, renderDirect, renderInElement, stream, audit, scrolling };
document.body.dataset.ready = '1';
