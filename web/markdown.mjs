// Model text -> safe DOM: Markdown (markdown-it, raw HTML off) and then a sanitizer (DOMPurify)
// with an allowlist, before anything enters the page.
//
// What model text may become, whatever it says: the elements markdown-it makes from Markdown
// (ALLOWED_TAGS below), no attribute but href/title/class/start, links only to http(s) and mailto
// (opened in a new tab, rel="noopener noreferrer", no referrer), class names only markdown-it's
// own (`language-*` on code, `align-*` on table cells). Images are off: an image is a request
// the model would make from the user's tab (and `img-src` refuses other origins anyway), so
// `![alt](url)` becomes a link, "image: alt". No `style` attribute either: markdown-it writes table alignment
// as style="text-align:…", which a strict `style-src 'self'` refuses; it becomes a class.
// Headings move one level down (# is h2): the host page owns its h1.
//
// Streaming (MarkdownView, below): the answer is split into top-level blocks; a block whose
// HTML is unchanged keeps its DOM node, so only the block being written (usually the last) is
// sanitized and replaced, and the text around a reader's selection stays put.
//
// Vendored files (web/assemble.py copies them into static/vendor/): markdown-it's own one-file
// ESM browser build (dist/browser/markdown-it.esm.min.mjs, no bare imports) and DOMPurify's ESM
// build (dist/purify.es.mjs).

import MarkdownIt from './vendor/markdown-it/markdown-it.esm.min.mjs';
import DOMPurifyDefault from './vendor/dompurify/purify.es.mjs';

/** Elements the model's Markdown may produce; anything else is removed with its content kept
 * as text (or dropped whole, for script-like elements: DOMPurify's FORBID_CONTENTS). */
export const ALLOWED_TAGS = Object.freeze([
  'p', 'br', 'hr', 'h2', 'h3', 'h4', 'h5', 'h6', 'strong', 'em', 's', 'code', 'pre', 'blockquote',
  'ul', 'ol', 'li', 'a', 'table', 'thead', 'tbody', 'tr', 'th', 'td',
]);
export const ALLOWED_ATTR = Object.freeze(['href', 'title', 'class', 'start']);
/** Set by the sanitizer itself on every link it keeps (never taken from the input). */
export const LINK_ATTR = Object.freeze({ target: '_blank', rel: 'noopener noreferrer', referrerpolicy: 'no-referrer' });
/** Link targets that survive: absolute http(s) and mailto only (no relative links into the host). */
export const SAFE_URL = /^(?:https?:\/\/|mailto:)/i;
const SAFE_CLASS = /^(?:language-[\w+#.-]{1,40}|align-(?:left|right|center))$/;

function createParser() {
  const md = new MarkdownIt({ html: false, linkify: true, breaks: true, typographer: false });
  const escape = md.utils.escapeHtml;
  md.renderer.rules.image = (tokens, idx, options, env, self) => {
    const t = tokens[idx];
    const alt = self.renderInlineAsText(t.children || [], options, env) || t.attrGet('src');
    return `<a href="${escape(t.attrGet('src'))}">image: ${escape(alt)}</a>`;
  };
  // linkify without a scheme ("script.py", "notes.md") would link to Paraguay and Moldova.
  md.linkify.set({ fuzzyLink: false, fuzzyEmail: false, fuzzyIP: false });
  md.validateLink = (url) => SAFE_URL.test(url.trim());
  md.core.ruler.after('block', 'intab_chat_blocks', (state) => {
    for (const t of state.tokens) {
      if (t.type === 'heading_open' || t.type === 'heading_close') {
        t.tag = `h${Math.min(6, Number(t.tag.slice(1)) + 1)}`;
      } else if ((t.type === 'th_open' || t.type === 'td_open') && t.attrs) {
        const style = t.attrGet('style');
        t.attrs = t.attrs.filter(([name]) => name !== 'style');
        const m = style && /text-align:\s*(left|right|center)/.exec(style);
        if (m) t.attrJoin('class', `align-${m[1]}`);
      }
    }
  });
  return md;
}

function createSanitizer(win) {
  const purify = DOMPurifyDefault(win); // an instance of our own: its hooks never touch the host's
  purify.setConfig({
    ALLOWED_TAGS: [...ALLOWED_TAGS], ALLOWED_ATTR: [...ALLOWED_ATTR],
    ALLOWED_URI_REGEXP: SAFE_URL, ADD_URI_SAFE_ATTR: ['start'],
    ALLOW_DATA_ATTR: false, ALLOW_ARIA_ATTR: false, ALLOW_UNKNOWN_PROTOCOLS: false,
    USE_PROFILES: false, RETURN_DOM_FRAGMENT: true,
  });
  purify.addHook('uponSanitizeAttribute', (node, data) => {
    if (data.attrName === 'class') {
      const kept = data.attrValue.split(/\s+/).filter((c) => SAFE_CLASS.test(c));
      if (kept.length) data.attrValue = kept.join(' '); else data.keepAttr = false;
    } else if (data.attrName === 'start' && !/^\d{1,9}$/.test(data.attrValue)) {
      data.keepAttr = false;
    }
  });
  purify.addHook('afterSanitizeAttributes', (node) => {
    if (node.nodeName !== 'A') return;
    if (node.hasAttribute('href') && SAFE_URL.test(node.getAttribute('href'))) {
      for (const [name, value] of Object.entries(LINK_ATTR)) node.setAttribute(name, value);
    } else {
      node.removeAttribute('href');
    }
  });
  return purify;
}

/**
 * The renderer: `blocks(text, env)` -> each top-level block as {html (markdown-it's output, not
 * yet sanitized), line (where it starts in text)}, `sanitize(html)` -> a DocumentFragment that is
 * safe to insert, `render(text)` -> the whole text as one safe fragment, `references(text, env)`
 * collects text's link reference definitions into env.
 */
export function createMarkdown(win = globalThis.window) {
  const md = createParser();
  const purify = createSanitizer(win);
  function blocks(text, env = {}) {
    const tokens = md.parse(String(text), env);
    const out = [];
    for (let i = 0; i < tokens.length; i++) {
      let j = i;
      if (tokens[i].nesting === 1) {
        while (j < tokens.length && !(tokens[j].level === tokens[i].level && tokens[j].nesting === -1)) j++;
      }
      out.push({ html: md.renderer.render(tokens.slice(i, j + 1), md.options, env), line: tokens[i].map ? tokens[i].map[0] : 0 });
      i = j;
    }
    return out;
  }
  const sanitize = (html) => purify.sanitize(html);
  const references = (text, env) => { md.parse(String(text), env); return env; };
  return { blocks, sanitize, references, render: (text) => sanitize(blocks(text).map((b) => b.html).join('')), markdownIt: md };
}

let shared = null;
/** One renderer per page (the parser and sanitizer hold no conversation state). */
export function markdown() {
  shared ||= createMarkdown();
  return shared;
}

// markdown-it reads "\r\n" and "\r" as "\n": line numbers count in the normalized text.
const normalize = (text) => String(text).replace(/\r\n?/g, '\n');
function lineOffset(text, line) {
  let at = 0;
  for (let i = 0; i < line && at !== -1; i++) at = text.indexOf('\n', at) + 1 || -1;
  return at === -1 ? text.length : at;
}

/**
 * Streaming Markdown into one container: `update(text)` with the whole text so far (coalesced
 * to one render per animation frame), `finish(text)` renders at once and exactly. Each
 * top-level block is a `<div class="md-block">`, kept while its HTML does not change.
 *
 * While streaming, blocks before the last two are frozen: later text starts no block before
 * them, so each update parses only the text from the second-to-last block on (~0.1 ms, however
 * long the answer; a whole 4.4 kB answer took 1.8 ms per update on a busy 2-core machine) with
 * the frozen part's link references. `finish` parses the whole text once and replaces any block
 * that came out differently (a reference defined after its use, say).
 */
export class MarkdownView {
  constructor(container, renderer = markdown()) {
    this.container = container;
    this.renderer = renderer;
    this.html = [];       // the unsanitized HTML of each block now shown
    this.text = '';
    this.frame = 0;
    this.renders = 0;     // how many block nodes were (re)built: tests check streaming reuses them
    this.#unfreeze();
  }

  #frozen = null;         // {text, blocks, refs}: the prefix no update parses again

  #unfreeze() { this.#frozen = { text: '', blocks: 0, refs: {} }; }

  /** `around(render)`, when set, is called instead of a coalesced render, to run it (the element
   * keeps the log scrolled to the end around it, measured before the new text is in). */
  around = null;

  update(text) {
    this.text = String(text);
    if (this.frame) return;
    const raf = globalThis.requestAnimationFrame;
    const run = () => (this.around ? this.around(() => this.flush()) : this.flush());
    // A hidden tab runs no animation frames: render there at once instead of piling up.
    if (!raf || globalThis.document?.visibilityState === 'hidden') return run();
    this.frame = raf(() => { this.frame = 0; run(); });
  }

  finish(text = this.text) {
    if (this.frame) { globalThis.cancelAnimationFrame(this.frame); this.frame = 0; }
    this.text = String(text);
    this.#unfreeze();
    this.#show(0, this.renderer.blocks(normalize(this.text)));
  }

  /** Render the text so far, parsing only past the frozen prefix. */
  flush() {
    const text = normalize(this.text);
    const f = this.#frozen;
    if (!text.startsWith(f.text)) this.#unfreeze();   // replaced, not appended to: start over
    const tail = text.slice(this.#frozen.text.length);
    const env = { references: { ...this.#frozen.refs } };
    const next = this.renderer.blocks(tail, env);
    this.#show(this.#frozen.blocks, next);
    if (next.length > 2) {
      const cut = lineOffset(tail, next[next.length - 2].line);
      const part = tail.slice(0, cut);
      const refs = this.renderer.references(part, { references: { ...this.#frozen.refs } }).references || {};
      this.#frozen = { text: this.#frozen.text + part, blocks: this.#frozen.blocks + next.length - 2, refs };
    }
  }

  /** Blocks `from`.. become `next`: a block whose HTML is unchanged keeps its node. */
  #show(from, next) {
    const nodes = this.container.children;
    for (let i = 0; i < next.length; i++) {
      const k = from + i;
      if (this.html[k] === next[i].html && nodes[k]) continue;
      const div = this.container.ownerDocument.createElement('div');
      div.className = 'md-block';
      div.append(this.renderer.sanitize(next[i].html));
      if (nodes[k]) nodes[k].replaceWith(div); else this.container.append(div);
      this.html[k] = next[i].html;
      this.renders++;
    }
    while (nodes.length > from + next.length) nodes[nodes.length - 1].remove();
    this.html.length = from + next.length;
  }
}
