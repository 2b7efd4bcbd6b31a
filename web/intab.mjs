// intab's public module, as a page imports it: `import * as intab from './intab.mjs'` (static/intab.mjs).
//
//   intab.create(options)            -> Engine (client.mjs): chat.completions.create, completions.create,
//                                       tokenize, countTokens, interruptGenerate, unload, ...
//   intab.CreateMLCEngine(id, config) WebLLM's entry point, over the same engine
//   intab.LanguageModel               the Prompt API (language_model.mjs); intab.installPolyfill()
//   intab.openBridge(options)         the model runtime alone, for Python in the page's own Pyodide
//   intab.keptModels(), intab.forgetKept(name)   GGUFs kept on this device (create({model: file, keep: true}))
//   <intab-chat>                      the chat element (element.mjs), defined on import (once)
//
// docs/api.md and docs/embedding.md describe them; errors are IntabError (errors.mjs).

export { Engine, create, CreateMLCEngine, openBridge } from './client.mjs';
export { LanguageModel, installPolyfill } from './language_model.mjs';
export { IntabError, InvalidParameterError } from './errors.mjs';
export { keptModels, forgetKept } from './kept_models.mjs';
export { VERSION as PROTOCOL_VERSION } from './protocol.mjs';

// The element registers itself, guarded, so importing this module twice defines it once. Only
// where there is a DOM: this module is imported by workers too (Python's, through openBridge).
if (globalThis.customElements) await import('./element.mjs');
