"""Golden greedy tokens: transformers on the GGUF, dequantized to fp32, eager attention, greedy.

Run from the repository root (needs requirements/reference.txt, CPU only, a minute or two):

    python3 -m models.reference.make_golden            # writes tests/golden/<model_id>.greedy.json
    python3 -m models.reference.make_golden --check    # regenerate in memory, compare with the file
    python3 -m models.reference.make_golden --model gemma3-270m   # a base model: text completion

Chat models run prompts.json's conversations through their chat template; a model without one (a
base model) continues prompts_completion.json's texts, the tokenizer adding BOS as transformers'
tokenizer(text) does.

Why transformers and not llama.cpp: llama.cpp multiplies with 8-bit quantized activations, so its
greedy tokens are not those of the fp32 dequantized network intab runs. transformers dequantizes
with gguf-py's `dequantize`, exactly as intab's build does.

Prompt ids come from intab's own exported tokenizer (models/tokenizer_export.py) and chat template,
loaded with transformers; they are cross-checked against the tokenizers library run directly on the
same tokenizer.json, and against the tokenizer transformers rebuilds from the GGUF (known to differ
on digits and tabs: it drops the GGUF's `smollm` digit-splitting pre-tokenizer). The differences are
printed and recorded in the JSON under `tokenizer_check`.

Per step the JSON also records `margins` (top-1 minus top-2 logit) and `top1_logits`, so a later
mismatch can be told apart from a near-tie. After generating, the whole sequence is run once more
in a single forward pass without a KV cache, and every greedy token is checked against it.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import gguf  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, PreTrainedTokenizerFast  # noqa: E402

from models.gguf_source import GGUFModel  # noqa: E402
from models.prepare import sha256_file  # noqa: E402
from models.recipes import DEFAULT, RECIPES  # noqa: E402
from models.source import fetch_gguf  # noqa: E402
from models.tokenizer_export import write_tokenizer  # noqa: E402

MAX_NEW_TOKENS = 64
PROMPTS = Path(__file__).with_name("prompts.json")
COMPLETION_PROMPTS = Path(__file__).with_name("prompts_completion.json")


def load_tokenizer(gguf_path: Path, out_dir: Path):
    """intab's exported tokenizer.json + tokenizer_config.json, loaded with transformers.

    PreTrainedTokenizerFast(tokenizer_file=...) keeps tokenizer.json's pre-tokenizer as written.
    AutoTokenizer.from_pretrained(out_dir) does not: transformers 5 maps `tokenizer_class:
    GPT2Tokenizer` to a class that rebuilds its own ByteLevel pre-tokenizer and drops the Digits
    step (e.g. "  42" -> Ġ Ġ 4 2 instead of ĠĠ 4 2); it is only cross-checked here.
    """
    write_tokenizer(GGUFModel(gguf_path).meta, out_dir)
    cfg = json.loads((out_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(out_dir / "tokenizer.json"), chat_template=cfg.get("chat_template"),
        **{k: cfg[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if cfg.get(k)})
    raw = tokenizers.Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(str(out_dir))
    return tok, raw, auto


def load_model(gguf_path: Path):
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32,
        attn_implementation="eager")
    model.eval()
    return model


def template_ids(tok, messages) -> tuple[str, list[int]]:
    if isinstance(messages, str):   # text completion: the prompt as is, special tokens added (BOS)
        return messages, [int(i) for i in tok(messages)["input_ids"]]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # BatchEncoding in transformers 5
        ids = ids["input_ids"]
    return text, [int(i) for i in ids]


def first_diff(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def tokenizer_check(cases, tok, raw, auto, gguf_path: Path) -> dict:
    """Compare the prompt ids used here (PreTrainedTokenizerFast on intab's tokenizer.json) with
    the tokenizers library run directly on the rendered prompt (must agree), with
    AutoTokenizer.from_pretrained on the exported folder, and with transformers' GGUF tokenizer."""
    gtok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    report = {"tokenizers_library": [], "autotokenizer_export_dir": [], "transformers_gguf_tokenizer": []}
    for case in cases:
        text, ids = template_ids(tok, _input(case))
        raw_ids = raw.encode(text, add_special_tokens="prompt" in case).ids
        if raw_ids != ids:
            raise AssertionError(f"{case['name']}: tokenizers library disagrees with transformers "
                                 f"at {first_diff(ids, raw_ids)}")
        for key, other in (("autotokenizer_export_dir", auto), ("transformers_gguf_tokenizer", gtok)):
            o_text, o_ids = template_ids(other, _input(case))
            if o_text != text:
                print(f"  !! {case['name']}: {key} renders the template differently")
            if o_ids != ids:
                i = first_diff(ids, o_ids)
                ours = tok.convert_ids_to_tokens(ids[max(0, i - 2):i + 4])
                theirs = tok.convert_ids_to_tokens(o_ids[max(0, i - 2):i + 4])
                report[key].append({"name": case["name"], "first_diff": i, "len_ours": len(ids),
                                    "len_other": len(o_ids), "ours": ours, "other": theirs})
                print(f"  {case['name']}: {key} differs at {i} ({len(ids)} vs {len(o_ids)} ids): "
                      f"ours {ours} / other {theirs}")
    for key, diffs in report.items():
        print(f"  {key}: {len(cases) - len(diffs)}/{len(cases)} prompts give the same ids")
    return report


def _input(case: dict):
    """A case's conversation (chat models) or its text (completion)."""
    return case["prompt"] if "prompt" in case else case["messages"]


@torch.no_grad()
def run_case(model, tok, case, eos_id: int) -> dict:
    text, prompt_ids = template_ids(tok, _input(case))
    input_ids = torch.tensor([prompt_ids], dtype=torch.long)
    gen = GenerationConfig(do_sample=False, max_new_tokens=MAX_NEW_TOKENS, eos_token_id=eos_id,
                           pad_token_id=eos_id, num_beams=1, temperature=None, top_p=None, top_k=None)
    out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), generation_config=gen,
                         return_dict_in_generate=True, output_logits=True)
    output_ids = [int(i) for i in out.sequences[0, len(prompt_ids):]]
    margins, top1 = [], []
    for step, logits in enumerate(out.logits):
        top = torch.topk(logits[0].float(), 2)
        if int(top.indices[0]) != output_ids[step]:
            raise AssertionError(f"{case['name']}: step {step} token is not the argmax of the raw logits")
        top1.append(round(float(top.values[0]), 4))
        margins.append(round(float(top.values[0] - top.values[1]), 4))
    # Recompute without a KV cache: one forward over prompt + output (minus the last token).
    full = torch.tensor([prompt_ids + output_ids[:-1]], dtype=torch.long)
    logits_full = model(full, use_cache=False).logits[0, len(prompt_ids) - 1:]
    nocache_argmax = logits_full.argmax(-1).tolist()
    nocache_diff = max(float((a[0] - b).abs().max()) for a, b in zip(out.logits, logits_full))
    if nocache_argmax != output_ids:
        print(f"  !! {case['name']}: no-cache recompute disagrees at {first_diff(output_ids, nocache_argmax)}")
    stopped = bool(output_ids) and output_ids[-1] == eos_id
    body = output_ids[:-1] if stopped else output_ids
    return {
        "name": case["name"],
        **({"prompt": case["prompt"]} if "prompt" in case else {"messages": case["messages"]}),
        "prompt_text": text,
        "prompt_ids": prompt_ids,
        "output_ids": output_ids,
        "output_text": tok.decode(body, skip_special_tokens=False),
        "finish_reason": "stop" if stopped else "length",
        "margins": margins,
        "top1_logits": top1,
        "_nocache": (nocache_argmax == output_ids, nocache_diff),
    }


def build(model_id: str = DEFAULT.model_id, gguf_path: Path | None = None) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # fixed reduction order: the figures in the file repeat run to run
    torch.use_deterministic_algorithms(True)
    recipe = RECIPES[model_id]
    gguf_path = Path(gguf_path) if gguf_path else fetch_gguf(recipe, ROOT / ".cache")
    meta = GGUFModel(gguf_path).meta
    completion = not meta.get("tokenizer.chat_template")
    cases = json.loads((COMPLETION_PROMPTS if completion else PROMPTS).read_text(encoding="utf-8"))["cases"]
    eos_id = int(meta["tokenizer.ggml.eos_token_id"])

    with tempfile.TemporaryDirectory() as d:
        tok, raw, auto = load_tokenizer(gguf_path, Path(d))
        print("tokenizer cross-check (prompt ids from intab's tokenizer.json vs others):")
        check = tokenizer_check(cases, tok, raw, auto, gguf_path)
        model = load_model(gguf_path)
        results = []
        for case in cases:
            r = run_case(model, tok, case, eos_id)
            ok, diff = r.pop("_nocache")
            print(f"  {r['name']:<18} prompt {len(r['prompt_ids']):>5}  new {len(r['output_ids']):>3}  "
                  f"{r['finish_reason']:<6}  min margin {min(r['margins']):7.4f} "
                  f"(step {r['margins'].index(min(r['margins']))})  "
                  f"no-cache {'same' if ok else 'DIFFERS'} (max |dlogit| {diff:.2e})  "
                  f"{r['output_text'][:60]!r}")
            results.append(r)

    return {
        "model_id": recipe.model_id,
        "reference": f"transformers {transformers.__version__} on the GGUF, fp32, greedy"
                     + (", text completion" if completion else ""),
        "max_new_tokens": MAX_NEW_TOKENS,
        "eos_token_id": eos_id,
        "gguf": {"file": gguf_path.name, "sha256": sha256_file(gguf_path),
                 "source": f"pip {recipe.pip_package}=={recipe.pip_version}: {recipe.gguf_member}"},
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "gguf": getattr(gguf, "__version__", None) or _dist_version("gguf"),
                     "tokenizers": tokenizers.__version__},
        "settings": "dtype float32, attn_implementation eager, do_sample False, torch 1 thread",
        "tokenizer_check": check,
        "cases": results,
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def dumps(data: dict) -> str:
    """Readable and diff-friendly: one line per top-level key and per field of each case."""
    def one(v):
        return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))
    lines = []
    for k, v in data.items():
        if k == "cases":
            cases = ["  {\n" + ",\n".join(f"   {one(ck)}: {one(cv)}" for ck, cv in c.items()) + "\n  }"
                     for c in v]
            lines.append(f" {one(k)}: [\n" + ",\n".join(cases) + "\n ]")
        else:
            lines.append(f" {one(k)}: {one(v)}")
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    assert json.loads(text) == data
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT.model_id)
    ap.add_argument("--gguf", type=Path, help="use this GGUF instead of fetching the recipe's wheel")
    ap.add_argument("--out", type=Path, help="default: tests/golden/<model_id>.greedy.json")
    ap.add_argument("--check", action="store_true", help="compare with the existing file, write nothing")
    args = ap.parse_args(argv)
    out = args.out or ROOT / "tests" / "golden" / f"{args.model}.greedy.json"
    text = dumps(build(args.model, args.gguf))
    if args.check:
        same = out.exists() and out.read_text(encoding="utf-8") == text
        print(f"{out}: {'identical' if same else 'DIFFERS'}")
        return 0 if same else 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
