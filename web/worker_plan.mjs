// Which backend and which kernel run the model, and why (the worker's first decision).
//
// Backend: 'webgpu' when asked, or under 'auto' when navigator.gpu gives a hardware adapter;
// 'wasm' otherwise. A software adapter (SwiftShader: seconds per token, against tens of tokens a
// second on WASM here) counts only with adapter: 'any'. Under 'auto', a WebGPU session that then
// fails falls back to WASM (worker_load.mjs), and the engine says why (`fallback`).
// Kernel (WASM only): intab's own (web/kernel) where the model and the browser allow it, else
// onnxruntime-web; onnxruntime-web also runs WebGPU.

import { fail } from './errors.mjs';
import { wasmThreads } from './bridge.mjs';

export async function probeWebGPU() {
  if (!self.navigator || !navigator.gpu) return null;
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info || {};
    return {
      adapter,
      adapterInfo: {
        vendor: info.vendor || '', architecture: info.architecture || '', device: info.device || '',
        description: info.description || '', isFallbackAdapter: !!(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
      },
      shaderF16: adapter.features.has('shader-f16'),
    };
  } catch {
    return null;
  }
}

/** The onnxruntime-web bundle for a backend. Each backend imports only its own bundle (and
 * that bundle's wasm), so the WASM path never downloads the WebGPU build. WebGPU: the native
 * WebGPU EP, in its JSPI build where WebAssembly JSPI exists (17 MB wasm, faster), else asyncify (27 MB). */
export function ortBundle(backend) {
  if (backend !== 'webgpu') return 'ort.wasm.min.mjs';
  return typeof WebAssembly.Suspending === 'function' ? 'ort.jspi.min.mjs' : 'ort.webgpu.min.mjs';
}

const oneOf = (name, value, allowed) => {
  if (!allowed.includes(value)) {
    const q = allowed.map((v) => `'${v}'`);
    throw fail('BackendError', `${name}='${value}' is invalid: use ${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}`, { param: name });
  }
};

/** Check the load options and choose: {backend, backendReason, threads, kernelWanted, probe}. */
export async function planBackend({ backend: wanted = 'auto', kernel = 'auto', threads, memory = 'fast', adapter = 'hardware', profiling = false }) {
  oneOf('backend', wanted, ['auto', 'wasm', 'webgpu']);
  oneOf('kernel', kernel, ['auto', 'intab', 'ort']);
  oneOf('memory', memory, ['fast', 'low']);
  oneOf('adapter', adapter, ['hardware', 'any']);
  if (threads !== undefined && threads !== null && !(Number.isInteger(threads) && threads >= 1 && threads <= 16)) {
    throw fail('BackendError', `threads=${threads} is invalid: use an integer from 1 to 16`, { param: 'threads' });
  }
  const probe = wanted === 'wasm' ? null : await probeWebGPU();
  let backend, backendReason;
  if (wanted === 'webgpu') {
    if (!probe) {
      throw fail('BackendError', 'WebGPU was requested but this browser gives no WebGPU adapter',
        { hint: "Use backend: 'wasm' (or ?backend=wasm), or a browser with WebGPU enabled.", param: 'backend' });
    }
    [backend, backendReason] = ['webgpu', 'requested'];
  } else if (wanted === 'wasm') {
    [backend, backendReason] = ['wasm', 'requested'];
  } else if (!probe) {
    [backend, backendReason] = ['wasm', 'no WebGPU adapter'];
  } else if (probe.adapterInfo.isFallbackAdapter && adapter !== 'any') {
    [backend, backendReason] = ['wasm', 'the WebGPU adapter is a software fallback'];
  } else {
    [backend, backendReason] = ['webgpu', probe.adapterInfo.isFallbackAdapter ? 'software WebGPU adapter allowed' : 'WebGPU adapter found'];
  }
  if (kernel === 'intab' && backend !== 'wasm') {
    throw fail('BackendError', `kernel='intab' runs on WASM only; the backend is ${backend}`,
      { hint: "Use backend: 'wasm' (or ?backend=wasm) with kernel 'intab'.", param: 'kernel' });
  }
  return {
    wanted, backend, backendReason, probe, kernelWanted: kernel, memory, profiling,
    threads: backend === 'wasm' ? (threads || wasmThreads()) : 1, requestedThreads: threads,
  };
}

/** The same plan on WASM: where an 'auto' WebGPU session failed. */
export function wasmPlan(plan, reason) {
  return { ...plan, backend: 'wasm', backendReason: `WebGPU failed: ${reason}`, threads: plan.requestedThreads || wasmThreads() };
}
