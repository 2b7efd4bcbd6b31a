// <intab-chat>'s stylesheet, adopted by each shadow root as a constructable stylesheet: a strict
// host CSP (`style-src 'self'`) refuses <style> elements and style= attributes, not the CSSOM,
// and a sheet in the module needs no second request (no flash of an unstyled element).
//
// Theming, from the host page:
// - custom properties, inherited into the shadow tree: --intab-font, --intab-font-size,
//   --intab-bg, --intab-fg, --intab-muted, --intab-surface, --intab-border, --intab-accent,
//   --intab-accent-fg, --intab-user-bg, --intab-code-bg, --intab-error-bg, --intab-error-fg,
//   --intab-focus, --intab-radius, --intab-gap
// - parts: frame, header, status, progress, progress-bar, file, notices, notice, error,
//   retry-button, log, empty, message (+ user / assistant / system, failed, streaming),
//   who, content, meta, copy-button, composer, input, buttons, button, send-button, stop-button,
//   new-chat-button
// Colours follow the page's color-scheme (light-dark()); the defaults meet WCAG AA contrast.

export const CSS = String.raw`
:host {
  --_font: var(--intab-font, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  --_bg: var(--intab-bg, light-dark(#f7f7f5, #17181a));
  --_fg: var(--intab-fg, light-dark(#1d1d1f, #ececec));
  --_muted: var(--intab-muted, light-dark(#595d63, #a9adb3));
  --_surface: var(--intab-surface, light-dark(#ffffff, #222326));
  --_border: var(--intab-border, light-dark(#d2d2ce, #44454a));
  --_accent: var(--intab-accent, light-dark(#2456d6, #8aadff));
  --_accent-fg: var(--intab-accent-fg, light-dark(#ffffff, #0d1020));
  --_user: var(--intab-user-bg, light-dark(#e8eefc, #26314d));
  --_code: var(--intab-code-bg, light-dark(#f0f0ec, #1a1b1e));
  --_error-bg: var(--intab-error-bg, light-dark(#fdecea, #3d1f1c));
  --_error-fg: var(--intab-error-fg, light-dark(#8a1c12, #ffb4a9));
  --_focus: var(--intab-focus, var(--_accent));
  --_radius: var(--intab-radius, 12px);
  --_gap: var(--intab-gap, .6rem);
  display: flex;
  flex-direction: column;
  box-sizing: border-box;
  height: 36rem;
  min-height: 16rem;
  font-family: var(--_font);
  font-size: var(--intab-font-size, 1rem);
  line-height: 1.5;
  color: var(--_fg);
  background: var(--_bg);
  border: 1px solid var(--_border);
  border-radius: var(--_radius);
  overflow: hidden;
}
:host([hidden]) { display: none; }
*, *::before, *::after { box-sizing: border-box; }

.frame { display: flex; flex-direction: column; gap: var(--_gap); flex: 1; min-height: 0; padding: var(--_gap); }
.visually-hidden {
  position: absolute !important; width: 1px; height: 1px; overflow: hidden;
  clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap;
}
[hidden] { display: none !important; }

.head { display: flex; justify-content: flex-end; min-height: 1.25rem; }
.status { margin: 0; color: var(--_muted); font-size: .85em; font-variant-numeric: tabular-nums; text-align: right; overflow-wrap: anywhere; }

.loading { background: var(--_surface); border: 1px solid var(--_border); border-radius: var(--_radius); padding: .6rem .9rem; }
.loading p { margin: .2rem 0; }
.loading progress { width: 100%; height: .7rem; accent-color: var(--_accent); }
.detail { color: var(--_muted); font-size: .85em; font-variant-numeric: tabular-nums; }
.load-files { list-style: none; margin: .35rem 0 0; padding: 0; display: grid; gap: .2rem; font-size: .8em; color: var(--_muted); font-variant-numeric: tabular-nums; }
.load-files li { display: grid; grid-template-columns: minmax(6rem, 12rem) 1fr minmax(12rem, auto); gap: .5rem; align-items: center; }
.load-files .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.load-files .text { text-align: right; }
.load-files progress { width: 100%; height: .45rem; accent-color: var(--_accent); }

.notices:empty { display: none; }
.notice { margin: 0; padding: .4rem .8rem; border-radius: var(--_radius); border: 1px solid var(--_border); background: var(--_surface); color: var(--_muted); font-size: .9em; }
.notice + .notice { margin-top: .35rem; }

.error { margin: 0; padding: .55rem .85rem; border-radius: var(--_radius); background: var(--_error-bg); color: var(--_error-fg); border: 1px solid currentColor; overflow-wrap: anywhere; }
.error .name { font-weight: 700; margin-right: .35rem; }
.error .hint { display: block; margin-top: .15rem; }
.error .actions { display: flex; flex-wrap: wrap; gap: .4rem; margin-top: .4rem; }
.error button { margin-top: .4rem; }

.log {
  flex: 1; min-height: 0; overflow-y: auto; overscroll-behavior: contain;
  display: flex; flex-direction: column; gap: var(--_gap); padding: 2px;
  border-radius: calc(var(--_radius) - 4px);
}
.empty { margin: auto 0; color: var(--_muted); text-align: center; }
.msg { max-width: 92%; padding: .5rem .8rem; border-radius: var(--_radius); border: 1px solid var(--_border); background: var(--_surface); overflow-wrap: anywhere; }
.msg .who { display: block; font-size: .75em; font-weight: 600; color: var(--_muted); text-transform: uppercase; letter-spacing: .04em; }
.msg.user { align-self: flex-end; background: var(--_user); }
.msg.user .content, .msg.system .content { white-space: pre-wrap; }
.msg.system { align-self: center; font-size: .9em; }
.msg.assistant { align-self: flex-start; }
.msg.failed { border-style: dashed; }
.msg.failed .who::after { content: " · not sent"; text-transform: none; letter-spacing: 0; }
.msg .copy { font-size: .75em; padding: .1rem .5rem; margin-top: .3rem; }
.msg .meta { display: block; margin-top: .25rem; font-size: .75em; color: var(--_muted); font-variant-numeric: tabular-nums; }
.msg.streaming .content:empty::after,
.msg.streaming .content > .md-block:last-child > :last-child::after { content: "▍"; color: var(--_muted); animation: blink 1s steps(1) infinite; }
@keyframes blink { 50% { opacity: 0; } }
@media (prefers-reduced-motion: reduce) { .msg.streaming .content *::after, .msg.streaming .content::after { animation: none; } }

/* Markdown inside answers */
.content > .md-block > :first-child { margin-top: 0; }
.content > .md-block:last-child > :last-child { margin-bottom: 0; }
.content p, .content ul, .content ol, .content pre, .content blockquote, .content table { margin: .45rem 0; }
.content h2, .content h3, .content h4, .content h5, .content h6 { margin: .7rem 0 .3rem; line-height: 1.25; }
.content h2 { font-size: 1.25em; } .content h3 { font-size: 1.12em; } .content h4, .content h5, .content h6 { font-size: 1em; }
.content ul, .content ol { padding-left: 1.4rem; }
.content code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; background: var(--_code); border-radius: 4px; padding: .05em .3em; }
.content pre { background: var(--_code); border: 1px solid var(--_border); border-radius: 8px; padding: .55rem .7rem; overflow-x: auto; white-space: pre; }
.content pre code { background: none; padding: 0; font-size: .88em; }
.content blockquote { margin-left: 0; padding-left: .8rem; border-left: 3px solid var(--_border); color: var(--_muted); }
.content table { border-collapse: collapse; display: block; overflow-x: auto; max-width: 100%; }
.content th, .content td { border: 1px solid var(--_border); padding: .25rem .55rem; text-align: left; }
.content th { background: var(--_code); }
.content .align-right { text-align: right; } .content .align-center { text-align: center; }
.content a { color: var(--_accent); text-decoration: underline; }
.content hr { border: 0; border-top: 1px solid var(--_border); }

.composer { display: flex; gap: .5rem; align-items: flex-end; }
textarea {
  flex: 1; min-width: 0; resize: vertical; min-height: 2.75rem; max-height: 40vh;
  font: inherit; color: var(--_fg); background: var(--_surface);
  border: 1px solid var(--_border); border-radius: 8px; padding: .45rem .6rem;
}
.buttons { display: flex; gap: .4rem; flex-wrap: wrap; justify-content: flex-end; }
button {
  font: inherit; border: 1px solid var(--_accent); border-radius: 8px; padding: .45rem .9rem;
  background: var(--_accent); color: var(--_accent-fg); cursor: pointer; white-space: nowrap;
}
button.secondary { background: transparent; color: var(--_accent); }
button:disabled { opacity: .45; cursor: not-allowed; }
:focus-visible { outline: 2px solid var(--_focus); outline-offset: 2px; }
.log:focus-visible { outline-offset: 0; }

@container (max-width: 30rem) {
  .composer { flex-direction: column; align-items: stretch; }
  .msg { max-width: 100%; }
  .load-files li { grid-template-columns: 1fr; gap: 0; }
  .load-files .text { text-align: left; }
}
.frame { container-type: inline-size; }
`;

let sheet = null;
/** The sheet, built once per page and shared by every <intab-chat> of the document. */
export function elementSheet() {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
  }
  return sheet;
}
