"""HF `tokenizers`-compatible BPE tokenizer in pure Python (runs in Pyodide).

Pipeline, as in `tokenizers`: split out added tokens (leftmost-longest) -> normalize the rest ->
pre-tokenize -> byte-level mapping -> BPE per pre-token (cached per word) -> post-process (BOS).
Only what the supported tokenizer.json files use is implemented; anything else raises
TokenizerError at load rather than tokenizing differently.
"""
from __future__ import annotations

import heapq
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Iterable

from intab import pretokenize
from intab.detokenizer import DecoderChain, StreamDecoder
from intab.errors import TokenizerError

_CACHE_LIMIT = 100_000  # distinct pre-token words kept in the BPE cache
_CACHE_MAX_WORD = 256  # longer "words" (Gemma's whole lines) rarely repeat: not worth the memory
_SHORT_WORD = 32  # below this many symbols the list-scan BPE loop beats the heap
_NO_MERGE = 1 << 62


@dataclass(frozen=True)
class AddedToken:
    id: int
    content: str
    special: bool
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool = False


Normalizer = Callable[[str], str]


def _unicode_normalizer(form: str) -> Normalizer:
    """unicodedata.normalize, held to the reference normalizers' (older, patchy) Unicode data.

    `tokenizers`' NFC & co. leave some code points inert (combining class 0, no decomposition,
    no composition): everything assigned after Unicode 14.0 (Pyodide's 3.14 is on 16.0 and would
    compose e.g. U+16D63 U+16D67), ~100 marks whose combining class they lack, U+11938, and for
    NFKC/NFKD 72 compatibility characters. Normalizing the stretches between such code points
    separately, and keeping them as they are, reproduces the reference exactly."""
    from intab import unicode_tables

    norm = unicodedata.normalize
    table = unicode_tables.NORMALIZER_INERT
    if form in ("NFKC", "NFKD"):
        table += " " + unicode_tables.NORMALIZER_INERT_COMPAT
    inert = re.compile(f"([{pretokenize._class_body(table)}])")

    def guarded(s: str) -> str:
        if inert.search(s) is None:
            return norm(form, s)
        parts = inert.split(s)  # odd indexes: the inert code points themselves
        return "".join(p if i % 2 else norm(form, p) for i, p in enumerate(parts))

    return guarded


def _normalizer(cfg: dict | None) -> Normalizer | None:
    if cfg is None:
        return None
    k = cfg.get("type")
    if k in ("NFC", "NFD", "NFKC", "NFKD"):
        return _unicode_normalizer(k)
    if k == "Lowercase":
        from intab.unicode_tables import LOWERCASE_EXTRA  # Rust's newer case mappings

        return lambda s: s.translate(LOWERCASE_EXTRA).lower()
    if k == "Replace":
        pat, content = cfg["pattern"], cfg["content"]
        if "String" in pat:
            return lambda s, a=pat["String"], b=content: s.replace(a, b)
        rx = pretokenize.compile_regex(pat["Regex"])
        return lambda s, rx=rx, b=content: rx.sub(lambda _m: b, s)
    if k == "Prepend":
        return lambda s, p=cfg["prepend"]: (p + s) if s else s
    if k == "Sequence":
        fns = [f for f in (_normalizer(c) for c in cfg["normalizers"]) if f is not None]

        def seq(s: str) -> str:
            for f in fns:
                s = f(s)
            return s

        return seq
    raise TokenizerError(f"unsupported normalizer {k!r}")


def _post_processor(cfg: dict | None, token_to_id: Callable[[str], int | None]) -> tuple[list[int], list[int]]:
    """(ids before, ids after) the sequence for a single input with add_special_tokens."""
    if cfg is None:
        return [], []
    k = cfg.get("type")
    if k == "ByteLevel":
        return [], []
    if k == "Sequence":
        pre: list[int] = []
        post: list[int] = []
        for sub in cfg["processors"]:
            a, b = _post_processor(sub, token_to_id)
            pre, post = pre + a, post + b
        return pre, post
    if k == "TemplateProcessing":
        specials = cfg.get("special_tokens", {})
        pre, post, seen = [], [], False
        for item in cfg["single"]:
            if "Sequence" in item:
                seen = True
                continue
            name = item["SpecialToken"]["id"]
            ids = specials[name]["ids"] if name in specials else [token_to_id(name)]
            if None in ids:
                raise TokenizerError(f"post-processor token {name!r} is not in the vocabulary")
            (post if seen else pre).extend(ids)
        return pre, post
    raise TokenizerError(f"unsupported post-processor {k!r}")


_NEVER = re.compile("(?!)")


def _trie_regex(words: list[str]) -> re.Pattern[str]:
    """A regex matching the longest of `words` at the leftmost position (a trie, not an alternation).

    A flat alternation of Gemma's 6,415 added tokens takes ~0.6 s to compile and scans text ~100x
    slower; the trie has one branch per next char, so matching is a single deterministic walk."""
    root: dict = {}
    for w in words:
        node = root
        for c in w:
            node = node.setdefault(c, {})
        node[""] = True

    def gen(node: dict) -> str:
        alts = [re.escape(c) + gen(child) for c, child in node.items() if c != ""]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return "(?:" + body + ")?" if "" in node else body

    return re.compile(gen(root))


class _BPE:
    """BPE model: merges applied lowest rank first, leftmost on ties (as `tokenizers`' heap does)."""

    def __init__(self, model: dict):
        if model.get("type") != "BPE":
            raise TokenizerError(f"unsupported tokenizer model {model.get('type')!r}; only BPE is supported")
        if model.get("dropout"):
            raise TokenizerError("BPE dropout is not supported")
        if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            raise TokenizerError("BPE continuing_subword_prefix / end_of_word_suffix are not supported")
        self.vocab: dict[str, int] = model["vocab"]
        merges = model["merges"]
        if merges and isinstance(merges[0], str):
            pairs = [tuple(m.split(" ")) for m in merges]
        else:
            pairs = list(map(tuple, merges))
        # later duplicates win, as in tokenizers' HashMap collect
        self.ranks: dict[tuple[str, str], int] = dict(zip(pairs, range(len(pairs))))  # type: ignore[arg-type]
        if pairs and (len(min(pairs, key=len)) != 2 or len(max(pairs, key=len)) != 2):
            raise TokenizerError("malformed merges: each merge must be a pair of tokens")
        self.byte_fallback = bool(model.get("byte_fallback", False))
        self.ignore_merges = bool(model.get("ignore_merges", False))
        self.fuse_unk = bool(model.get("fuse_unk", False))
        unk = model.get("unk_token")
        self.unk_id = self.vocab.get(unk) if unk is not None else None
        self._known_chars: set[str] = set()
        if unk is not None and self.unk_id is None:
            raise TokenizerError(f"unk_token {unk!r} is not in the vocabulary")

    def symbols(self, word: str) -> list[str]:
        """Initial symbols: one per char, byte tokens or <unk> for chars outside the vocabulary."""
        known = self._known_chars  # chars seen so far that are vocabulary entries (grows lazily)
        if known.issuperset(word):
            return list(word)
        vocab = self.vocab
        known.update(c for c in set(word) if c in vocab)
        if known.issuperset(word):
            return list(word)
        out: list[str] = []
        unk_pending = False
        for ch in word:
            if ch in vocab:
                if unk_pending:
                    out.append("\x00unk")
                    unk_pending = False
                out.append(ch)
                continue
            if self.byte_fallback:
                bts = [f"<0x{b:02X}>" for b in ch.encode("utf-8")]
                if all(t in vocab for t in bts):
                    if unk_pending:
                        out.append("\x00unk")
                        unk_pending = False
                    out.extend(bts)
                    continue
            if self.unk_id is not None:
                if unk_pending and not self.fuse_unk:
                    out.append("\x00unk")
                unk_pending = True
        if unk_pending:
            out.append("\x00unk")
        return out

    def word_ids(self, word: str) -> list[int]:
        vocab = self.vocab
        if self.ignore_merges:
            i = vocab.get(word)
            if i is not None:
                return [i]
        syms = self.symbols(word)
        if len(syms) > 1:
            syms = self._merge_short(syms) if len(syms) < _SHORT_WORD else self._merge_heap(syms)
        unk = self.unk_id
        return [unk if s == "\x00unk" else vocab[s] for s in syms]  # type: ignore[misc]

    def _merge_short(self, syms: list[str]) -> list[str]:
        """Leftmost lowest-rank merge first; pair ranks kept in a list so min()/index() run in C."""
        get = self.ranks.get
        inf = _NO_MERGE
        pr = [get(pair, inf) for pair in zip(syms, syms[1:])]
        while pr:
            best = min(pr)
            if best == inf:
                return syms
            i = pr.index(best)
            syms[i] = merged = syms[i] + syms[i + 1]
            del syms[i + 1]
            del pr[i]
            if i:
                pr[i - 1] = get((syms[i - 1], merged), inf)
            if i < len(pr):
                pr[i] = get((merged, syms[i + 1]), inf)
        return syms

    def _merge_heap(self, syms: list[str]) -> list[str]:
        """`tokenizers`' Word::merge_all: a heap of (rank, position) with lazy invalidation.

        An entry is live while the pair at its position still has its rank (ranks are unique
        per pair), which is what tokenizers' "same new id" check amounts to."""
        get = self.ranks.get
        n = len(syms)
        nxt = list(range(1, n + 1))
        prv = list(range(-1, n - 1))
        heap = [(r, i) for i, r in enumerate(map(get, zip(syms, syms[1:]))) if r is not None]
        heapq.heapify(heap)
        pop, push = heapq.heappop, heapq.heappush
        while heap:
            r, i = pop(heap)
            j = nxt[i]
            if j >= n or syms[i] is None or get((syms[i], syms[j])) != r:
                continue
            syms[i] = new = syms[i] + syms[j]
            syms[j] = None  # type: ignore[call-overload]
            k = nxt[i] = nxt[j]
            if k < n:
                prv[k] = i
                rr = get((new, syms[k]))
                if rr is not None:
                    push(heap, (rr, i))
            p = prv[i]
            if p >= 0:
                rr = get((syms[p], new))
                if rr is not None:
                    push(heap, (rr, p))
        return [s for s in syms if s is not None]


def _assign_added_ids(entries: list[dict], vocab: dict[str, int]) -> list[AddedToken]:
    """Added tokens with the ids `tokenizers` gives them, which ignores the file's "id" fields.

    A token already in the model vocabulary keeps that id; a new one gets len(vocab), or one past
    the largest added id once added ids reach past the vocabulary. A repeated content keeps its
    first id and takes the later flags (but stays special if it ever was)."""
    out: dict[str, AddedToken] = {}
    ever_special: set[str] = set()
    n = len(vocab)
    top = -1
    for a in entries:
        content = a["content"]
        if a.get("single_word"):
            raise TokenizerError(f"added token {content!r}: single_word is not supported")
        if content in out:
            tid = out[content].id
        elif content in vocab:
            tid = vocab[content]
        else:
            tid = n if (top < 0 or (top < n and n != 0)) else top + 1
        top = max(top, tid)
        if a.get("special"):
            ever_special.add(content)
        out[content] = AddedToken(tid, content, content in ever_special, bool(a.get("lstrip")),
                                  bool(a.get("rstrip")), bool(a.get("normalized")))
    return list(out.values())


class Tokenizer:
    """Encode/decode exactly as HF `tokenizers` does for the same tokenizer.json."""

    def __init__(self, spec: dict, config: dict | None = None):
        config = config or {}
        self._bpe = _BPE(spec["model"])
        self._normalize = _normalizer(spec.get("normalizer"))
        self._pre, self._byte_level = pretokenize.from_json(spec.get("pre_tokenizer"))
        self._decoder = DecoderChain.from_json(spec.get("decoder"))
        self._added = _assign_added_ids(spec.get("added_tokens") or [], self._bpe.vocab)
        self._added_by_content = {a.content: a for a in self._added}
        self._added_by_id = {a.id: a for a in self._added}
        self.special_ids: frozenset[int] = frozenset(a.id for a in self._added if a.special)
        self._split_special = bool(config.get("split_special_tokens", False))
        self._pre_ids, self._post_ids = _post_processor(spec.get("post_processor"), self.token_to_id)
        ids = list(self._bpe.vocab.values()) + [a.id for a in self._added]
        self.vocab_size: int = (max(ids) + 1) if ids else 0
        self._cache: dict[str, list[int]] = {}
        self._splitter: re.Pattern[str] | None = None
        self._splitter_norm: re.Pattern[str] | None = None
        self._added_by_norm: dict[str, AddedToken] = {}
        self._id_to_tok: list[str | None] | None = None

    @property
    def max_token_chars(self) -> int:
        """The longest token's text, in characters (a byte-level token's characters are bytes,
        so at least as many as the text characters it stands for): no token covers more."""
        if getattr(self, "_max_token_chars", None) is None:
            self._max_token_chars = max([len(t) for t in self._bpe.vocab] + [len(a.content) for a in self._added] + [1])
        return self._max_token_chars

    @classmethod
    def from_json(cls, tokenizer_json: str | dict, config: dict | None = None) -> "Tokenizer":
        """Build from tokenizer.json (text or parsed) and tokenizer_config.json (parsed, optional)."""
        if isinstance(tokenizer_json, (str, bytes)):
            try:
                spec = json.loads(tokenizer_json)
            except ValueError as e:
                raise TokenizerError(f"tokenizer.json is not valid JSON: {e}") from e
        else:
            spec = tokenizer_json
        try:
            return cls(spec, config)
        except TokenizerError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise TokenizerError(f"malformed tokenizer.json: {type(e).__name__}: {e}") from e

    # ---- lookups -------------------------------------------------------------------------
    def token_to_id(self, token: str) -> int | None:
        a = self._added_by_content.get(token)
        if a is not None:
            return a.id
        return self._bpe.vocab.get(token)

    def id_to_token(self, token_id: int) -> str | None:
        a = self._added_by_id.get(token_id)
        if a is not None:
            if a.normalized and self._normalize is not None:
                return self._normalize(a.content)  # tokenizers returns normalized tokens normalized
            return a.content
        table = self._id_table()
        return table[token_id] if 0 <= token_id < len(table) else None

    def _id_table(self) -> list[str | None]:
        if self._id_to_tok is None:
            table: list[str | None] = [None] * self.vocab_size
            for t, i in self._bpe.vocab.items():
                table[i] = t
            self._id_to_tok = table
        return self._id_to_tok

    # ---- encode --------------------------------------------------------------------------
    def _added_regex(self, normalized: bool) -> re.Pattern[str] | None:
        """Trie over the added tokens matched before (raw text) or after (normalized) normalization.

        Normalized tokens are matched in their normalized form, as tokenizers does."""
        table: dict[str, AddedToken] = {}
        for a in self._added:
            if a.normalized != normalized or (self._split_special and a.special):
                continue
            key = self._normalize(a.content) if (normalized and self._normalize) else a.content
            if key:
                table.setdefault(key, a)
        if normalized:
            self._added_by_norm = table
        return _trie_regex(list(table)) if table else None

    def _matcher(self, normalized: bool) -> re.Pattern[str]:
        if normalized:
            if self._splitter_norm is None:
                self._splitter_norm = self._added_regex(True) or _NEVER
            return self._splitter_norm
        if self._splitter is None:
            self._splitter = self._added_regex(False) or _NEVER
        return self._splitter

    def _split_added(self, text: str, normalized: bool) -> list[tuple[str, int | None]]:
        """Leftmost-longest split of `text` on added tokens: (piece, id or None for plain text).

        lstrip/rstrip tokens also take the whitespace next to them, as `tokenizers` does."""
        rx = self._matcher(normalized)
        out: list[tuple[str, int | None]] = []
        by = self._added_by_norm if normalized else self._added_by_content
        prev = pos = 0
        n = len(text)
        while True:
            m = rx.search(text, pos)
            if m is None:
                break
            s, e = m.span()
            a = by[m.group()]
            if a.lstrip:
                while s > prev and text[s - 1] in pretokenize.WHITESPACE:
                    s -= 1
            if a.rstrip:
                while e < n and text[e] in pretokenize.WHITESPACE:
                    e += 1
            if s > prev:
                out.append((text[prev:s], None))
            out.append((text[s:e], a.id))
            prev = pos = e
        if prev < n:
            out.append((text[prev:], None))
        return out

    def _encode_plain(self, text: str, out: list[int]) -> None:
        """Normalize, pre-tokenize and BPE a stretch of text holding no (non-normalized) added token."""
        if self._normalize is not None:
            text = self._normalize(text)
        if self._matcher(True) is not _NEVER:  # normalized added tokens (matched even with no normalizer)
            for piece, tid in self._split_added(text, True):
                if tid is not None:
                    out.append(tid)
                else:
                    self._encode_words(piece, out)
            return
        self._encode_words(text, out)

    def _encode_words(self, text: str, out: list[int]) -> None:
        cache = self._cache
        bpe = self._bpe
        byte_level = self._byte_level
        for word in self._pre(text):
            ids = cache.get(word)
            if ids is None:
                ids = bpe.word_ids(pretokenize.to_byte_level(word) if byte_level else word)
                if len(word) <= _CACHE_MAX_WORD:
                    if len(cache) >= _CACHE_LIMIT:
                        cache.clear()
                    cache[word] = ids
            out.extend(ids)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`, equal to `tokenizers.Tokenizer.encode(text, add_special_tokens).ids`."""
        if not isinstance(text, str):
            raise TokenizerError(f"encode expects a str, got {type(text).__name__}")
        out: list[int] = list(self._pre_ids) if add_special_tokens else []
        try:
            for piece, tid in self._split_added(text, False):
                if tid is not None:
                    out.append(tid)
                else:
                    self._encode_plain(piece, out)
        except UnicodeEncodeError as e:  # lone surrogates (possible in JS strings) have no UTF-8 form
            raise TokenizerError(f"text contains an unpaired surrogate at position {e.start}",
                                 "Replace unpaired UTF-16 surrogates (e.g. with U+FFFD) before encoding.") from e
        if add_special_tokens:
            out.extend(self._post_ids)
        return out

    # ---- decode --------------------------------------------------------------------------
    def _token_for_decode(self, token_id: int, skip_special_tokens: bool) -> str | None:
        if skip_special_tokens and token_id in self.special_ids:
            return None
        return self.id_to_token(token_id)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`, equal to `tokenizers.Tokenizer.decode(ids, skip_special_tokens)`."""
        toks = [t for t in (self._token_for_decode(int(i), skip_special_tokens) for i in ids) if t is not None]
        return self._decoder.decode(toks)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for (OpenAI's logprobs `bytes`): a byte-level token's raw
        bytes (possibly half a UTF-8 character), a byte-fallback token's byte, else its text."""
        tok = self.id_to_token(int(token_id))
        if tok is None:
            return b""
        if self._decoder._only_byte_level and int(token_id) not in self._added_by_id:
            return self._decoder.token_bytes(tok)
        if self._decoder._has_byte_fallback and len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):
            try:
                return bytes([int(tok[3:5], 16)])
            except ValueError:
                pass
        return tok.replace("\u2581", " ").encode("utf-8", "replace") if "\u2581" in tok else \
            self.decode([int(token_id)]).encode("utf-8", "replace")

    def stream_decoder(self, skip_special_tokens: bool = False) -> StreamDecoder:
        """A fresh incremental detokenizer over this tokenizer."""
        return StreamDecoder(self, skip_special_tokens)
