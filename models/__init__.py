"""Model preparation: a source checkpoint (GGUF) -> browser artifacts (ONNX, tokenizer, manifest).

What each architecture means lives in the tab's package (py/intab/arch, pure Python, so the tab
can read a user's GGUF with it); every entry point into models/ (build.py, tools, `python -m
models.prepare`, the tests) finds it through py/ on the path.
"""
import sys as _sys
from pathlib import Path as _Path

_PY = str(_Path(__file__).resolve().parent.parent / "py")
if _PY not in _sys.path:
    _sys.path.insert(0, _PY)
