// One extra thread of the intab kernel (web/kernel_bridge.mjs): instantiate the module on the
// shared memory, say so, then park in worker_loop, which takes row ranges of each matrix product
// and never returns. The bridge terminates this worker when it is released.
self.onmessage = async (ev) => {
  const { module, memory, index } = ev.data;
  try {
    const { exports } = await WebAssembly.instantiate(module, { env: { memory, now: () => performance.now() } });
    self.postMessage({ type: 'parked' });
    exports.worker_loop(index);
  } catch (err) {
    self.postMessage({ type: 'error', message: `kernel thread ${index}: ${err && err.message}` });
  }
};
