"""The same code inside Pyodide (Python 3.14, Unicode 16 `unicodedata`) under Node: ids, text and
prompts equal the references computed here. Skipped without node/Pyodide."""
from __future__ import annotations

import json

import pytest

from tests.tokenizer_fixtures import (  # noqa: F401
    CHATS_FOR_PYODIDE, corpus, family_dirs, family_specials, load_texts, run_in_pyodide,
)

pytestmark = pytest.mark.slow

CODE = r"""
import json, unicodedata
from intab.tokenizer import Tokenizer
from intab.chat_template import ChatTemplate
job = json.load(open('/job/job.json', encoding='utf-8'))
out = {"python": __import__('sys').version, "unidata": unicodedata.unidata_version, "families": {}}
for fam, strings in job["strings"].items():
    tok = Tokenizer.from_json(open(f'/job/{fam}/tokenizer.json', encoding='utf-8').read(),
                              json.load(open(f'/job/{fam}/tokenizer_config.json', encoding='utf-8')))
    enc = [tok.encode(s) for s in strings]
    dec = [tok.decode(ids) for ids in enc]
    streamed = []
    for ids in enc:
        d = tok.stream_decoder()
        streamed.append("".join(d.push(i) for i in ids) + d.flush())
    ct = ChatTemplate.from_config(json.load(open(f'/job/{fam}/tokenizer_config.json', encoding='utf-8')))
    prompts = [ct.render(m, add_generation_prompt=True) for m in job["chats"]]
    out["families"][fam] = {"enc": enc, "dec": dec, "streamed": streamed, "prompts": prompts}
from intab import pretokenize
out["contractions"] = pretokenize.RegexIsolated(pretokenize.compile_regex(job["pattern"]))(job["ci_text"])
json.dumps(out)
"""


def _post_14_chars() -> str:
    """Letters, digits and composing marks assigned after Unicode 14 (CPython 3.11 does not know them)."""
    return "\U0001E030\U00031350\U0002EBF0\u1C89\uA7CB\U00010D50\U00016D70\U00011DE0 \U00016D63\U00016D67 x\U00011F00y"


def test_pyodide_matches_references(family_dirs, tmp_path):
    from tokenizers import Tokenizer as HF
    from transformers import AutoTokenizer

    fams = ("smollm2", "qwen3", "llama3", "gemma3")
    sizes = {"smollm2": 500, "qwen3": 500, "llama3": 200, "gemma3": 200}
    strings = {}
    files = {}
    for fam in fams:
        folder = family_dirs[fam]
        text, _ = load_texts(str(folder))
        strings[fam] = corpus(family_specials(text), n=sizes[fam], seed=21) + [_post_14_chars()]
        files[f"/job/{fam}/tokenizer.json"] = folder / "tokenizer.json"
        files[f"/job/{fam}/tokenizer_config.json"] = folder / "tokenizer_config.json"
    job = tmp_path / "job.json"
    # Python's own case folding decides (?i:'s|...): check it in Pyodide's 3.14 too
    pattern = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    ci_text = "".join("'" + chr(c) + "x\n'" + chr(c) * 2 + "\n" for c in [*range(0x20, 0x2200), *range(0xFB00, 0xFB50)])
    job.write_text(json.dumps({"strings": strings, "chats": CHATS_FOR_PYODIDE, "pattern": pattern, "ci_text": ci_text}),
                   encoding="utf-8")
    files["/job/job.json"] = job
    res = json.loads(run_in_pyodide(CODE, files, tmp_path))
    assert res["python"].startswith("3.1")
    from tokenizers import Regex, pre_tokenizers

    ref_pieces = [p for p, _ in pre_tokenizers.Split(Regex(pattern), behavior="isolated").pre_tokenize_str(ci_text)]
    assert res["contractions"] == ref_pieces
    for fam in fams:
        ref = HF.from_file(str(family_dirs[fam] / "tokenizer.json"))
        got = res["families"][fam]
        bad = [s for s, ids in zip(strings[fam], got["enc"]) if ids != ref.encode(s).ids]
        assert not bad, (fam, res["unidata"], len(bad), bad[:3])
        for ids, d, st in zip(got["enc"], got["dec"], got["streamed"]):
            assert d == st == ref.decode(ids, skip_special_tokens=False)
        hf = AutoTokenizer.from_pretrained(str(family_dirs[fam]))
        want = [hf.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in CHATS_FOR_PYODIDE]
        assert got["prompts"] == want
