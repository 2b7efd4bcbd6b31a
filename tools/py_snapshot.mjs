// Pyodide's memory after its boot with intab imported, as a file (Pyodide's snapshot API:
// loadPyodide({_makeSnapshot: true}) ... makeMemorySnapshot(); the worker boots from it with
// loadPyodide({_loadSnapshot})). Run by build.py's py-snapshot step, in Node, on the same
// pyodide.asm.wasm the page serves (a snapshot holds its build id and is refused by any other).
//
//   node tools/py_snapshot.mjs <pyodide dir> <intab-bundle.zip> <out.bin.gz>
//
// The bundle's sha256 goes into the snapshot (intab_snapshot.BUNDLE): the worker keeps the
// imported modules only when the bundle it unpacks is that one.
//
// Why: the worker's boot spent 1.8-2.9 s in loadPyodide (Python's own start: the interpreter,
// its stdlib imports) and 0.15 s importing intab; from the snapshot both take a fraction of that
// (web/README.md, "The start").
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import zlib from 'node:zlib';

const [dir, bundlePath, out] = process.argv.slice(2);
if (!out) throw new Error('usage: node tools/py_snapshot.mjs <pyodide dir> <intab-bundle.zip> <out.bin.gz>');
const { loadPyodide } = await import(pathToFileURL(path.join(path.resolve(dir), 'pyodide.mjs')).href);
const py = await loadPyodide({ indexURL: path.resolve(dir) + '/', packages: [], _makeSnapshot: true });
const bundle = new Uint8Array(fs.readFileSync(bundlePath));
const sha = createHash('sha256').update(bundle).digest('hex');
const site = py.runPython("import sys\nnext(p for p in sys.path if p.endswith('site-packages'))");
py.unpackArchive(bundle, 'zip', { extractDir: site });
// What the worker imports at its start and on its first requests: intab.pyodide_glue, and the
// modules imported lazily (the chat template's jinja2: 1.0 s of compiling its source in
// Pyodide, which keeps no .pyc; the tokenizer's Unicode tables; the constraint engine).
// Nothing may hold a JS object here (the snapshot refuses live references to JS values).
py.runPython(`
import sys, types
import intab.pyodide_glue, intab.chat_template, intab.tokenizer, intab.unicode_tables, intab.constrain
import pyodide.ffi
marker = types.ModuleType('intab_snapshot')
marker.BUNDLE = ${JSON.stringify(sha)}
sys.modules['intab_snapshot'] = marker
del marker
`);
const snap = py.makeMemorySnapshot();
// gzip: 31.5 MB -> 7.3 MB (most of the memory is zeros and tables); the worker inflates it with
// DecompressionStream.
const gz = zlib.gzipSync(snap, { level: 6 });
fs.writeFileSync(out + '.part', gz);
fs.renameSync(out + '.part', out);
console.log(`[py-snapshot] ${out}: ${(snap.length / 1e6).toFixed(1)} MB, gzipped ${(gz.length / 1e6).toFixed(1)} MB, bundle ${sha.slice(0, 12)}`);
