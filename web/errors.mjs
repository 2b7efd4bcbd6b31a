// intab's typed errors, on both sides of the worker boundary. An error crosses postMessage as
// {name, message, hint, param, traceback?}: message and hint stay apart, so no layer ever parses
// one back out of a joined string or a Python traceback.
//
//   try { ... } catch (e) { if (e instanceof IntabError) show(e.message, e.hint); }
//
// `name` is the kind: Python's own class names where the error came from the engine
// (InvalidParameter, PromptTooLong, TemplateError, TokenizerError, BackendError, ProcessorError),
// and LoadError, IntegrityError, NotReady, EngineCrashed, ProtocolError from the JS side.

export class IntabError extends Error {
  constructor(message, { name = 'IntabError', hint = '', param = null, traceback = '', cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = name;
    this.hint = hint;
    this.param = param;
    if (traceback) this.traceback = traceback;
  }

  toJSON() {
    const o = { name: this.name, message: this.message, hint: this.hint, param: this.param };
    if (this.traceback) o.traceback = this.traceback;
    return o;
  }
}

/** An option the caller got wrong: names it (`param`) and says what it accepts. */
export class InvalidParameterError extends IntabError {
  constructor(param, message, hint = 'Check the request against docs/api.md, which lists every field and what it accepts.') {
    super(message, { name: 'InvalidParameter', param, hint });
  }
}

export const HINTS = {
  LoadError: 'Check the connection and that the page is served from a built static/ folder, then try again.',
  BackendError: 'Try the other backend (backend: "wasm" or "webgpu"), or reload the page.',
  NotReady: 'Wait for create() to resolve before sending requests.',
  EngineCrashed: 'The engine stopped (often: out of memory). Create a new engine; your messages are not lost.',
  Unloaded: 'This engine was unloaded; create a new one.',
};

/** An error as it crosses postMessage. */
export function toWire(err) {
  if (err instanceof IntabError) return err.toJSON();
  if (err && err.constructor && err.constructor.name === 'PythonError') {
    // Only a bug can get here: the session answers {ok: false, error} for every error of ours.
    return { name: 'InternalError', message: String(err.message || '').trim().split('\n').pop() || 'Python error',
      hint: 'This is a bug in intab; the engine is still usable. Please report it.', param: null, traceback: String(err.message || '') };
  }
  const name = (err && err.name) || 'Error';
  return { name, message: (err && err.message) || String(err), hint: (err && err.hint) || HINTS[name] || '', param: (err && err.param) ?? null };
}

/** The error a wire object describes. */
export function fromWire(o) {
  return new IntabError(o && o.message ? o.message : 'unknown error', {
    name: (o && o.name) || 'IntabError', hint: (o && o.hint) || '', param: (o && o.param) ?? null, traceback: (o && o.traceback) || '',
  });
}

/** A typed error from the JS side: `fail('LoadError', 'could not …')`. */
export function fail(name, message, extra = {}) {
  return new IntabError(message, { name, hint: HINTS[name] || '', ...extra });
}
