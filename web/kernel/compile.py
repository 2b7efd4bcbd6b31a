"""Compile the kernel (decoder.c) to wasm with the clang inside the `ziglang` wheel.

    compile_kernel(out_dir) -> [file names]

Two builds of the same source: decoder.wasm (shared memory + atomics: threads, needs a
cross-origin isolated page) and decoder-st.wasm (one thread, for pages that are not). Both need
SIMD128 and relaxed-SIMD (its FMA); a browser without them gets onnxruntime-web instead
(web/worker.mjs). Skipped when the outputs are newer than the source and this file.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "decoder.c"
COMMON = ["-target", "wasm32-freestanding", "-O3", "-msimd128", "-mrelaxed-simd", "-mbulk-memory",
          "-nostdlib", "-Wl,--strip-all", "-Wl,--no-entry", "-Wl,--import-memory", "-Wl,--export=__heap_base"]
BUILDS = {
    "decoder.wasm": ["-matomics", "-Wl,--shared-memory", "-Wl,--max-memory=4294901760"],
    "decoder-st.wasm": ["-Wl,--max-memory=4294901760"],
}


def node_flags() -> list[str]:
    """What Node needs to run the kernel (node_bridge.mjs): Node 20 ships relaxed-SIMD behind a
    flag; later versions have it on (and may drop the flag)."""
    probe = subprocess.run(["node", "--experimental-wasm-relaxed-simd", "-e", "0"], capture_output=True)
    return ["--experimental-wasm-relaxed-simd"] if probe.returncode == 0 else []


def compile_kernel(out_dir: Path, defines: tuple[str, ...] = ()) -> list[str]:
    """defines: e.g. ("KERNEL_PROFILE",) for tools/profile_kernel.py's phase timers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    newest_input = max(SOURCE.stat().st_mtime, Path(__file__).stat().st_mtime)
    for name, flags in BUILDS.items():
        out = out_dir / name
        if out.exists() and out.stat().st_mtime >= newest_input:
            continue
        tmp = out.with_name(name + ".tmp")
        cmd = [sys.executable, "-m", "ziglang", "cc", *COMMON, *flags, *(f"-D{d}" for d in defines), "-o", str(tmp), str(SOURCE)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"compiling {SOURCE.name} -> {name} failed:\n{r.stderr}")
        tmp.replace(out)
    return list(BUILDS)


if __name__ == "__main__":
    print(compile_kernel(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "static" / "kernel"))
