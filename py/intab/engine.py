"""The generation loop: messages -> prompt ids -> prefill -> sample/decode -> streamed text.

Runs unchanged under CPython (OrtBackend) and in Pyodide (JsBackend). The KV cache lives in the
backend; the engine only remembers which token ids it holds, so a follow-up turn re-feeds just
the tokens after the longest common prefix.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol, Sequence

from .backend import Backend
from .config import GenerationConfig
from .errors import EngineBusy, IntabError, PromptTooLong
from .sampling import LogitsProcessor, Sampler, apply_processors, candidates_needed, make_logits_processors, make_sampler

DeltaCallback = Callable[[str], Any]
StepObserver = Callable[[Any, int], Any]   # (the step's candidates as the model gave them, the chosen token)


class TokenizerLike(Protocol):
    vocab_size: int

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str: ...
    def stream_decoder(self, skip_special_tokens: bool = False) -> Any: ...


class TemplateLike(Protocol):
    def render(self, messages: list[dict], add_generation_prompt: bool = True, **extra: Any) -> str: ...


@dataclass(frozen=True)
class ModelInfo:
    """What the engine needs to know about the model, read from the model folder's JSON files."""
    max_context: int
    eos_ids: frozenset[int]
    vocab_size: int
    num_candidates: int
    generation_defaults: dict = field(default_factory=dict)

    @classmethod
    def from_files(cls, config: dict, generation_config: dict, tokenizer_config: dict,
                   manifest: dict | None, eos_token_id: int | None) -> "ModelInfo":
        eos = generation_config.get("eos_token_id", config.get("eos_token_id"))
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if eos_token_id is not None:
            eos_ids.add(eos_token_id)
        defaults = {k: v for k, v in generation_config.items()
                    if k in ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "max_new_tokens")}
        if not generation_config.get("do_sample", False):
            defaults["temperature"] = 0.0   # transformers: without do_sample, generation is greedy
        return cls(
            max_context=int(config.get("max_position_embeddings") or tokenizer_config.get("model_max_length")),
            eos_ids=frozenset(eos_ids),
            vocab_size=int(config["vocab_size"]),
            num_candidates=int((manifest or {}).get("num_candidates", 64)),
            generation_defaults=defaults,
        )


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]
    prompt_tokens: int
    new_tokens: int
    finish_reason: str            # "stop" | "length" | "abort"
    reused_tokens: int = 0        # prompt tokens whose KV was kept from the previous turn
    ttft_ms: float = 0.0
    prefill_tok_s: float = 0.0
    decode_tok_s: float = 0.0
    python_ms_per_token: float = 0.0
    backend_ms_per_token: float = 0.0   # the await of backend.forward per decode step, as Python sees it

    def to_dict(self) -> dict:
        return asdict(self)


class _StopStrings:
    """Holds back text that might be the start of a stop string, so none is ever shown."""

    def __init__(self, stops: Sequence[str]):
        self.stops = tuple(stops)
        self.text = ""
        self.emitted = 0

    def feed(self, delta: str) -> tuple[str, bool]:
        """Add text; return (text safe to show now, whether a stop string was hit)."""
        self.text += delta
        if not self.stops:
            return self._emit(len(self.text)), False
        hits = [i for i in (self.text.find(s, max(0, self.emitted - len(s) + 1)) for s in self.stops) if i >= 0]
        if hits:
            self.text = self.text[:min(hits)]
            return self._emit(len(self.text)), True
        hold = max((n for s in self.stops for n in range(1, len(s)) if self.text.endswith(s[:n])), default=0)
        return self._emit(len(self.text) - hold), False

    def finish(self) -> str:
        return self._emit(len(self.text))

    def _emit(self, upto: int) -> str:
        out = self.text[self.emitted:upto] if upto > self.emitted else ""
        self.emitted = max(self.emitted, upto)
        return out


class Engine:
    def __init__(self, tokenizer: TokenizerLike, template: TemplateLike, backend: Backend, info: ModelInfo,
                 prefill_chunk: int = 256):
        self.tokenizer = tokenizer
        self.template = template
        self.backend = backend
        self.info = info
        self.prefill_chunk = prefill_chunk
        self._kv_ids: list[int] = []     # token ids whose KV the backend holds
        self._abort = False
        self._busy = False

    @classmethod
    def from_files(cls, files: dict[str, str], backend: Backend, **kwargs: Any) -> "Engine":
        """Build from the model folder's JSON texts (tokenizer.json, tokenizer_config.json, ...)."""
        from .chat_template import ChatTemplate
        from .tokenizer import Tokenizer

        tok_config = json.loads(files["tokenizer_config.json"])
        tokenizer = Tokenizer.from_json(files["tokenizer.json"], tok_config)
        eos = tok_config.get("eos_token")
        eos_id = tokenizer.token_to_id(eos if isinstance(eos, str) else (eos or {}).get("content", "")) if eos else None
        info = ModelInfo.from_files(json.loads(files["config.json"]), json.loads(files["generation_config.json"]),
                                    tok_config, json.loads(files["manifest.json"]) if "manifest.json" in files else None,
                                    eos_id)
        return cls(tokenizer, ChatTemplate.from_config(tok_config), backend, info, **kwargs)

    # -- control -------------------------------------------------------------------------------
    def abort(self) -> None:
        """Ask the running generation to stop after the current step (safe to call any time)."""
        if self._busy:
            self._abort = True

    async def reset(self) -> None:
        """Forget the conversation: empty the KV cache."""
        self._kv_ids = []
        await self.backend.truncate(0)

    # -- generation ----------------------------------------------------------------------------
    def config(self, options: dict | None = None) -> GenerationConfig:
        return GenerationConfig.from_options(options, self.info.generation_defaults)

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        text = self.template.render(messages, add_generation_prompt=True)
        # transformers' apply_chat_template(tokenize=True) encodes without adding special tokens.
        return self.tokenizer.encode(text, add_special_tokens=False)

    async def generate(self, messages: list[dict], options: dict | None = None,
                       on_delta: DeltaCallback | None = None) -> GenerationResult:
        t_start = time.perf_counter()   # TTFT includes the template and the tokenizer
        cfg = self.config(options)
        return await self.generate_ids(self.prompt_ids(messages), cfg, on_delta, t_start=t_start)

    async def generate_ids(self, prompt: list[int], cfg: GenerationConfig,
                           on_delta: DeltaCallback | None = None, *, t_start: float | None = None,
                           logits_processors: Sequence[LogitsProcessor] = (), sampler: Sampler | None = None,
                           observe: StepObserver | None = None, min_candidates: int = 0) -> GenerationResult:
        """logits_processors run after the config's own, `sampler` replaces the config's, `observe`
        sees each step's unprocessed candidates and the chosen token (intab.api: logprobs,
        confidence); min_candidates raises K (greedy alone asks for 1)."""
        if self._busy:
            raise EngineBusy("a generation is already running.")
        self._busy, self._abort = True, False
        try:
            return await self._generate(prompt, cfg, on_delta, t_start, tuple(logits_processors), sampler, observe,
                                        min_candidates)
        except BaseException:
            # The backend may hold a half-written KV cache: start clean next time.
            self._kv_ids = []
            try:
                await self.backend.truncate(0)
            except Exception:
                pass
            raise
        finally:
            self._busy, self._abort = False, False

    async def _generate(self, prompt: list[int], cfg: GenerationConfig,
                        on_delta: DeltaCallback | None, t_start: float | None = None,
                        user_processors: tuple = (), user_sampler: Sampler | None = None,
                        observe: StepObserver | None = None, min_candidates: int = 0) -> GenerationResult:
        t_start = time.perf_counter() if t_start is None else t_start
        limit = self.info.max_context
        if not prompt:
            raise IntabError("the prompt is empty.", "Send at least one message.")
        if len(prompt) >= limit:
            raise PromptTooLong(f"the prompt is {len(prompt)} tokens but the model's context holds {limit}.")
        max_new = min(cfg.max_tokens, limit - len(prompt))
        k = candidates_needed(cfg, self.info.num_candidates, self.info.vocab_size)
        if user_processors or user_sampler is not None:
            k = max(k, min(self.info.num_candidates, self.info.vocab_size))   # user code sees the full top-K
        k = min(self.info.vocab_size, max(k, min_candidates))
        processors = make_logits_processors(cfg) + list(user_processors)
        sample = user_sampler or make_sampler(cfg, random.Random(cfg.seed) if cfg.seed is not None else random.Random())
        eos = frozenset() if cfg.ignore_eos else self.info.eos_ids

        # Prefill: reuse the KV cache for the common prefix; always feed at least one token.
        reuse = 0
        for a, b in zip(self._kv_ids, prompt):
            if a != b:
                break
            reuse += 1
        reuse = min(reuse, len(prompt) - 1)
        if reuse < self.backend.kv_length:
            await self.backend.truncate(reuse)
        self._kv_ids = self._kv_ids[:reuse]
        pos = reuse
        cands = None
        while pos < len(prompt):
            if self._abort:
                return self._result("", [], prompt, reuse, "abort", t_start, None, None, 0.0, 0)
            chunk = prompt[pos:pos + self.prefill_chunk]
            cands = await self.backend.forward(chunk, pos, k)
            pos += len(chunk)
            self._kv_ids.extend(chunk)
        t_prefill = time.perf_counter()

        # Decode
        history = list(prompt)
        generated: list[int] = []
        detok = self.tokenizer.stream_decoder(skip_special_tokens=True)
        stops = _StopStrings(cfg.stop)
        text_parts: list[str] = []
        finish, stop_hit = "length", False
        t_first = None
        backend_s = 0.0

        def emit(piece: str) -> None:
            if piece:
                text_parts.append(piece)
                if on_delta is not None:
                    on_delta(piece)

        while True:
            assert cands is not None
            token = sample(apply_processors(processors, history, cands))
            if observe is not None:
                observe(cands, token)
            if t_first is None:
                t_first = time.perf_counter()
            generated.append(token)
            history.append(token)
            if token in eos:
                finish = "stop"
                break
            shown, hit = stops.feed(detok.push(token))
            emit(shown)
            if hit:
                finish, stop_hit = "stop", True
                break
            if len(generated) >= max_new:
                break
            if self._abort:
                finish = "abort"
                break
            t0 = time.perf_counter()
            cands = await self.backend.forward([token], len(self._kv_ids), k)
            backend_s += time.perf_counter() - t0
            self._kv_ids.append(token)

        if not stop_hit:   # text after a stop string is dropped, with the detokenizer's tail
            emit(stops.feed(detok.flush())[0])
            emit(stops.finish())
        return self._result("".join(text_parts), generated, prompt, reuse, finish, t_start, t_prefill, t_first,
                            backend_s, len(prompt) - reuse)

    def _result(self, text: str, generated: list[int], prompt: list[int], reuse: int, finish: str,
                t_start: float, t_prefill: float | None, t_first: float | None, backend_s: float,
                fed: int) -> GenerationResult:
        t_end = time.perf_counter()
        steps = max(0, len(generated) - 1)   # forward calls after the first token
        decode_s = (t_end - t_first) if t_first is not None else 0.0
        prefill_s = (t_prefill - t_start) if t_prefill is not None else 0.0
        return GenerationResult(
            text=text,
            token_ids=generated,
            prompt_tokens=len(prompt),
            new_tokens=len(generated),
            finish_reason=finish,
            reused_tokens=reuse,
            ttft_ms=round(1000 * (t_first - t_start), 2) if t_first is not None else 0.0,
            prefill_tok_s=round(fed / prefill_s, 2) if prefill_s > 0 else 0.0,
            decode_tok_s=round(steps / decode_s, 2) if decode_s > 0 and steps else 0.0,
            python_ms_per_token=round(1000 * (decode_s - backend_s) / steps, 3) if steps else 0.0,
            backend_ms_per_token=round(1000 * backend_s / steps, 3) if steps else 0.0,
        )
