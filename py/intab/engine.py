"""The generation loop: messages -> prompt ids -> prefill -> sample/decode -> streamed text.

Runs unchanged under CPython (intab_host.OrtBackend) and in Pyodide (JsBackend). The KV cache
lives in the backend; `KVCache` remembers which token ids it holds (and snapshots of other
conversations), so a follow-up turn re-feeds just the tokens after the longest common prefix.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol, Sequence

from .backend import Backend
from .candidates import Candidates
from .config import GenerationConfig
from .confidence import TokenConfidence, summarize, token_confidence
from .errors import IntabError, InvalidParameter, ProcessorError, PromptTooLong, StopGeneration, TemplateError
from .kv_cache import KVCache
from .sampling import apply_processors, candidates_needed, head_for, make_logits_processors, make_sampler
from .stream import TextStream

# Candidates asked of the head even for greedy decoding: enough for the confidence figures
# (margin, entropy) and for top_logprobs up to 20. The head's cost does not depend on K here
# (one pass over the logits keeps a heap of K), and 20 candidates cross into Python in ~10 µs.
MIN_CANDIDATES = 20

LogitsProcessor = Callable[[Sequence[int], Candidates], Candidates]
Sampler = Callable[[Candidates], int]


class TokenizerLike(Protocol):
    vocab_size: int
    special_ids: frozenset[int]

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str: ...
    def stream_decoder(self, skip_special_tokens: bool = False) -> Any: ...
    def token_bytes(self, token_id: int) -> bytes: ...


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
    model_id: str = ""

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
            model_id=str((manifest or {}).get("model_id", "")),
        )


@dataclass(frozen=True)
class Request:
    """A request checked and tokenized, ready to run (Engine.prepare_chat / prepare_completion)."""
    prompt: list[int]
    cfg: GenerationConfig
    dropped: int = 0           # messages left out by context_overflow='drop_oldest'
    prepare_ms: float = 0.0    # template + tokenizer time, counted in TTFT


@dataclass
class Delta:
    """A piece of the answer as it streams: the text now safe to show and the tokens generated
    since the last delta (their text may have been held back before: a split UTF-8 character, a
    possible stop string)."""
    text: str
    token_ids: list[int]
    logprobs: list[dict] | None = None
    # the answer's tool calls, on the last delta, in OpenAI's stream shape ({index, id, type, function})
    tool_calls: list[dict] | None = None


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]
    prompt_tokens: int
    new_tokens: int
    finish_reason: str            # "stop" | "length" | "abort" | "tool_calls"
    # why, in more detail: "eos" | "stop_string" | "special_token" | "processor" | "max_tokens" |
    # "context_full" | "abort"
    stop_reason: str = ""
    stop_token: str | None = None       # the special token that ended the answer (not shown in text)
    reused_tokens: int = 0        # prompt tokens whose KV was kept (from the live cache or a snapshot)
    restored_tokens: int = 0      # of which came from another conversation's snapshot
    kv_ms: float = 0.0            # time spent saving and restoring KV snapshots for this request
    dropped_messages: int = 0     # oldest messages left out to fit the context (context_overflow)
    ttft_ms: float = 0.0
    prefill_tok_s: float = 0.0
    decode_tok_s: float = 0.0
    python_ms_per_token: float = 0.0
    backend_ms_per_token: float = 0.0   # the await of backend.forward per decode step, as Python sees it
    logprobs: list[dict] | None = None  # with logprobs=True: one entry per generated token
    confidence: dict = field(default_factory=dict)           # AnswerConfidence
    token_confidence: list[dict] = field(default_factory=list)   # TokenConfidence per generated token
    # With tools: the calls ({id, type: 'function', function: {name, arguments: JSON text}}); `text`
    # is then what came before the first call (the content).
    tool_calls: list[dict] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class Engine:
    def __init__(self, tokenizer: TokenizerLike, template: TemplateLike | None, backend: Backend, info: ModelInfo,
                 prefill_chunk: int = 256, kv_snapshot_bytes: int = 128 << 20):
        self.tokenizer = tokenizer
        self.template = template
        self.backend = backend
        self.info = info
        self.prefill_chunk = prefill_chunk
        self.kv = KVCache(backend, kv_snapshot_bytes)
        self._abort = False
        self._busy = False
        self._lock: asyncio.Lock | None = None   # made on first use, on the running loop (Pyodide's too)
        self._constraints = None                 # intab.constrain.ConstraintCompiler, on first use

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
        # A base model has no chat template: it still completes text (Engine.complete).
        template = ChatTemplate.from_config(tok_config) if tok_config.get("chat_template") else None
        return cls(tokenizer, template, backend, info, **kwargs)

    # -- control -------------------------------------------------------------------------------
    def abort(self) -> None:
        """Ask the running generation to stop after the current step (safe to call any time)."""
        if self._busy:
            self._abort = True

    @property
    def busy(self) -> bool:
        return self._busy

    async def reset(self) -> None:
        """Forget every conversation: the live KV cache and the snapshots."""
        async with self._queue():
            self.kv.drop_snapshots()
            await self.kv.clear()

    # -- text <-> ids (no backend needed) --------------------------------------------------------
    def config(self, options: dict | None = None) -> GenerationConfig:
        return GenerationConfig.from_options(options, self.info.generation_defaults)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True, **extra: Any) -> str:
        if self.template is None:
            raise TemplateError("this model has no chat template (it is a base model).",
                                "Use text completion (completions.create / engine.complete) with a plain prompt.")
        return self.template.render(messages, add_generation_prompt=add_generation_prompt, **extra)

    def prompt_ids(self, messages: list[dict], **extra: Any) -> list[int]:
        # transformers' apply_chat_template(tokenize=True) encodes without adding special tokens.
        return self.tokenizer.encode(self.apply_chat_template(messages, **extra), add_special_tokens=False)

    def completion_ids(self, prompt: str) -> list[int]:
        # A plain prompt gets the tokenizer's own special tokens (a base model's BOS), as
        # transformers' tokenizer(prompt) and its text-generation pipeline do.
        return self.tokenizer.encode(prompt, add_special_tokens=True)

    def count_tokens(self, messages: list[dict], add_generation_prompt: bool = True) -> int:
        """Tokens of the conversation as the model sees it (its chat template applied): exact."""
        return len(self.tokenizer.encode(self.apply_chat_template(messages, add_generation_prompt),
                                         add_special_tokens=False))

    # -- generation ----------------------------------------------------------------------------
    def prepare_chat(self, messages: list[dict], options: dict | GenerationConfig | None = None,
                     **template_extra: Any) -> "Request":
        """Check the options and render + tokenize the conversation (the model's chat template);
        every error a request can meet before it runs is raised here."""
        t0 = time.perf_counter()
        cfg = options if isinstance(options, GenerationConfig) else self.config(options)
        messages = list(messages)
        messages, template_extra = self._with_tools(messages, cfg, template_extra)
        dropped = 0
        text = self.apply_chat_template(messages, **template_extra)
        if cfg.context_overflow == "drop_oldest" and self._surely_too_long(text):
            def can_fit(kept: list[dict]) -> tuple[str, bool]:   # by characters: no tokenizing yet
                t = self.apply_chat_template(kept, **template_extra)
                return t, not self._surely_too_long(t)

            dropped, text = self._first_cut(messages, can_fit)
        if self._surely_too_long(text):
            raise PromptTooLong(f"the prompt is {len(text)} characters, more than the model's context of "
                                f"{self.info.max_context} tokens can hold.", param="messages")
        prompt = self.tokenizer.encode(text, add_special_tokens=False)
        if cfg.context_overflow == "drop_oldest":
            prompt, more = self._fit(messages, prompt, cfg, template_extra)
            dropped += more
        return self._request(prompt, cfg, dropped, t0)

    def _with_tools(self, messages: list[dict], cfg: GenerationConfig, extra: dict) -> tuple[list[dict], dict]:
        """The request's tools and the conversation's past calls and results, as the chat template
        takes them (intab/tools.py); the call's constraint compiled now, so that a parameters
        schema the engine refuses fails the request before it queues."""
        request = cfg.tool_request
        if request is None and not any(m.get("tool_calls") or m.get("role") == "tool" for m in messages):
            return messages, extra
        if self.template is None:
            raise TemplateError("tools need a chat template; this model has none (it is a base model).", param="tools")
        from .tools import check_schemas, messages_for
        source = self.template.named_templates.get("tool_use") or self.template.source
        messages, variables = messages_for(messages, request, source)
        if request is not None and request.calls_allowed:
            check_schemas(request, self._compile)
            self.constraint(cfg)
        return messages, {**extra, **variables}

    def _surely_too_long(self, text: str) -> bool:
        """Whether `text` cannot fit the context whatever its tokens, known without tokenizing it:
        no token covers more than max_token_chars characters (x4: a normalizer may compose
        characters). Tokenizing a 1 MB message takes ~10 s in CPython and minutes in Pyodide
        before PromptTooLong; this takes none (found by the fuzzer, tests/browser/fuzz)."""
        return len(text) > 4 * self.tokenizer.max_token_chars * self.info.max_context

    @staticmethod
    def _cuts(messages: list[dict]) -> list[int]:
        """Where the conversation may start, oldest turns left out one by one after a leading system
        message: [head, ...]. Each step leaves out the oldest turn and the answers that would then
        open the conversation; the last message always stays."""
        head = 1 if messages and messages[0].get("role") == "system" else 0
        cuts, s = [head], head
        while len(messages) - s > 1:
            s += 1
            while len(messages) - s > 1 and messages[s].get("role") not in ("user", None):
                s += 1
            cuts.append(s)
        return cuts

    def _first_cut(self, messages: list[dict], fits: Callable[[list[dict]], tuple[Any, bool]]) -> tuple[int, Any]:
        """Leave out (in place) the oldest turns up to the first cut (_cuts) whose kept messages
        `fits`, or up to the last cut when none does; returns (messages left out, what `fits`
        computed for the kept ones). fits(kept) -> (value, ok) is called at cuts[0] and then on
        a binary search over the others: O(log n) renders + tokenizations of the conversation, not
        one per dropped turn as before (quadratic: a 200-turn chat re-tokenized ~200 times). The
        first fit is the binary search's because a shorter conversation never has more tokens
        (each message is its own span of the template; tests/test_engine.py checks the cut against
        the old one-by-one loop)."""
        cuts = self._cuts(messages)
        head = cuts[0]
        kept = lambda s: messages[:head] + messages[s:]   # noqa: E731
        seen: dict[int, tuple[Any, bool]] = {}

        def at(i: int) -> tuple[Any, bool]:
            if i not in seen:
                seen[i] = fits(kept(cuts[i]))
            return seen[i]

        lo, hi = 0, len(cuts) - 1          # the answer is in cuts[lo..hi]; cuts[hi] when none fits
        if hi and not at(0)[1]:
            lo = 1
            while lo < hi:
                mid = (lo + hi) // 2
                if at(mid)[1]:
                    hi = mid
                else:
                    lo = mid + 1
        value = at(lo)[0]
        del messages[head:cuts[lo]]
        return cuts[lo] - head, value

    def prepare_completion(self, prompt: str, options: dict | GenerationConfig | None = None) -> "Request":
        """The same for a plain text to continue (no chat template): base models, raw prompts."""
        t0 = time.perf_counter()
        cfg = options if isinstance(options, GenerationConfig) else self.config(options)
        if cfg.tools is not None:
            raise InvalidParameter("tools are for chat: a tool call needs the chat template.",
                                   "Use chat (engine.generate / chat.completions.create) with tools.", param="tools")
        if not isinstance(prompt, str):
            raise InvalidParameter(f"prompt must be a string, got {type(prompt).__name__}.", "Pass the text to continue.",
                                   param="prompt")
        if self._surely_too_long(prompt):
            raise PromptTooLong(f"the prompt is {len(prompt)} characters, more than the model's context of "
                                f"{self.info.max_context} tokens can hold.", param="prompt")
        return self._request(self.completion_ids(prompt), cfg, 0, t0, param="prompt")

    def _request(self, prompt: list[int], cfg: GenerationConfig, dropped: int, t0: float, param: str = "messages") -> "Request":
        limit = self.info.max_context
        if not prompt:
            # A kind of its own, not the bare IntabError: found by the fuzzer (tests/browser/fuzz).
            raise InvalidParameter("the prompt is empty.", "Send at least one message." if param == "messages" else
                                   "Pass some text to continue.", param=param)
        if len(prompt) >= limit:
            raise PromptTooLong(f"the prompt is {len(prompt)} tokens but the model's context holds {limit}.",
                                param=param)
        return Request(prompt, cfg, dropped, round(1000 * (time.perf_counter() - t0), 3))

    async def generate(self, messages: list[dict], options: dict | GenerationConfig | None = None,
                       on_delta: Callable[[Delta], Any] | None = None, *,
                       logits_processors: Sequence[LogitsProcessor] = (), sampler: Sampler | None = None,
                       **template_extra: Any) -> GenerationResult:
        """Answer a conversation (the model's chat template applied)."""
        return await self.run(self.prepare_chat(messages, options, **template_extra), on_delta,
                              logits_processors=logits_processors, sampler=sampler)

    async def complete(self, prompt: str, options: dict | GenerationConfig | None = None,
                       on_delta: Callable[[Delta], Any] | None = None, *,
                       logits_processors: Sequence[LogitsProcessor] = (), sampler: Sampler | None = None) -> GenerationResult:
        """Continue a plain text (no chat template): for base models, and for raw prompts."""
        return await self.run(self.prepare_completion(prompt, options), on_delta,
                              logits_processors=logits_processors, sampler=sampler)

    async def generate_ids(self, prompt: list[int], cfg: GenerationConfig,
                           on_delta: Callable[[Delta], Any] | None = None, **kwargs: Any) -> GenerationResult:
        """Generate from prompt token ids."""
        return await self.run(self._request(list(prompt), cfg, 0, time.perf_counter()), on_delta, **kwargs)

    def _fit(self, messages: list[dict], prompt: list[int], cfg: GenerationConfig,
             extra: dict) -> tuple[list[int], int]:
        """context_overflow='drop_oldest': leave out the oldest turns after a leading system message
        until the prompt leaves room for the answer (max_tokens, at most a quarter of the context).
        The last message always stays."""
        limit = self.info.max_context
        room = min(cfg.max_tokens, limit // 4)
        whole = len(messages)

        def fits(kept: list[dict]) -> tuple[list[int], bool]:
            ids = prompt if len(kept) == whole else self.prompt_ids(kept, **extra)   # the given one, cut 0
            return ids, len(ids) + room <= limit

        dropped, prompt = self._first_cut(messages, fits)
        return prompt, dropped

    def _queue(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def run(self, request: "Request", on_delta: Callable[[Delta], Any] | None = None, *,
                  logits_processors: Sequence[LogitsProcessor] = (), sampler: Sampler | None = None) -> GenerationResult:
        """Run a prepared request. Concurrent calls queue and run one at a time, in order; TTFT
        counts the request's preparation and its own run, not the wait in the queue."""
        async with self._queue():
            self._busy, self._abort = True, False
            try:
                result = await self._generate(request.prompt, request.cfg, on_delta,
                                              time.perf_counter() - request.prepare_ms / 1000,
                                              list(logits_processors), sampler)
                result.dropped_messages = request.dropped
                return result
            except BaseException:
                # The backend may hold a half-written KV cache: start clean next time.
                self.kv.forget_live()
                try:
                    await self.backend.truncate(0)
                except Exception:
                    pass
                raise
            finally:
                self._busy, self._abort = False, False

    async def _generate(self, prompt: list[int], cfg: GenerationConfig, on_delta: Callable[[Delta], Any] | None,
                        t_start: float, user_procs: list[LogitsProcessor],
                        user_sampler: Sampler | None) -> GenerationResult:
        limit = self.info.max_context
        max_new = min(cfg.max_tokens, limit - len(prompt))
        k = max(candidates_needed(cfg, self.info.num_candidates, self.info.vocab_size),
                self.info.num_candidates if (user_procs or user_sampler) else 0,
                cfg.top_logprobs, MIN_CANDIDATES)
        k = min(k, self.info.vocab_size)
        processors = make_logits_processors(cfg) + [_guarded(p, "logits processor") for p in user_procs]
        rng = random.Random(cfg.seed) if cfg.seed is not None else random.Random()
        sample = _guarded_sampler(user_sampler, self.info.vocab_size) if user_sampler else make_sampler(cfg, rng)
        eos = frozenset() if cfg.ignore_eos else self.info.eos_ids
        special_stops = frozenset() if cfg.ignore_eos else frozenset(self.tokenizer.special_ids) - eos
        matcher = self.constraint(cfg)   # compiled (or refused) before any token
        tools = cfg.tool_request
        splitter = None
        if tools is not None and tools.calls_allowed:
            from .tools import ContentSplitter
            splitter = ContentSplitter()   # the text from <tool_call> on becomes tool_calls, not content

        def head(history: list[int]):
            return head_for(cfg, k, history, matcher.mask() if matcher is not None else None,
                            None if user_sampler else rng,
                            skip_disallowed=matcher is not None and not cfg.logprobs)

        prep = await self.kv.prepare(prompt)
        reuse, pos, cands = prep.reused, prep.reused, None
        while pos < len(prompt):
            if self._abort:
                return self._result("", [], prompt, prep, "abort", "abort", t_start, None, None, 0.0, 0)
            chunk = prompt[pos:pos + self.prefill_chunk]
            cands = await self.backend.forward(chunk, pos, head(prompt) if pos + len(chunk) >= len(prompt) else k)
            pos += len(chunk)
            self.kv.extend(chunk)
        t_prefill = time.perf_counter()

        history = list(prompt)
        generated: list[int] = []
        stream = TextStream(self.tokenizer, cfg.stop)
        text_parts: list[str] = []
        logprobs: list[dict] | None = [] if cfg.logprobs else None
        confidences: list[TokenConfidence] = []
        pending_ids: list[int] = []
        pending_lp: list[dict] = []
        finish, reason, stop_token = "length", "max_tokens", None
        t_first = None
        backend_s = 0.0

        def emit(piece: str, final: bool = False, calls: list[dict] | None = None) -> None:
            if splitter is not None and not final:
                piece = splitter.push(piece)
            if piece:
                text_parts.append(piece)
            if on_delta is not None and (piece or calls or (final and pending_ids)):
                on_delta(Delta(piece, pending_ids[:], pending_lp[:] if logprobs is not None else None,
                               [{"index": i, **c} for i, c in enumerate(calls)] if calls else None))
                pending_ids.clear()
                pending_lp.clear()

        while True:
            assert cands is not None
            try:
                token = sample(apply_processors(processors, history, cands))
            except StopGeneration:
                finish, reason = "stop", "processor"
                break
            if t_first is None:
                t_first = time.perf_counter()
            generated.append(token)
            history.append(token)
            confidences.append(token_confidence(cands, token))
            pending_ids.append(token)
            if logprobs is not None:
                entry = self._logprob_entry(cands, token, cfg.top_logprobs)
                logprobs.append(entry)
                pending_lp.append(entry)
            if matcher is not None:
                matcher.accept(token)
            if token in eos:
                finish, reason = "stop", "eos"
                break
            if token in special_stops:
                # A control token mid-answer (SmolLM2 was seen writing <|im_start|> to begin a new
                # turn of its own): what follows is not the answer. It ends here; the token is not
                # shown as text but is reported (stop_token) and kept in token_ids.
                finish, reason, stop_token = "stop", "special_token", self.tokenizer.decode([token])
                break
            shown, hit = stream.push(token)
            emit(shown)
            if hit:
                finish, reason = "stop", "stop_string"
                break
            if matcher is not None and matcher.must_stop:   # complete, and nothing may follow
                finish, reason = "stop", "constraint"
                break
            if len(generated) >= max_new:
                reason = "max_tokens" if len(generated) >= cfg.max_tokens else "context_full"
                break
            if self._abort:
                finish = reason = "abort"
                break
            t0 = time.perf_counter()
            cands = await self.backend.forward([token], len(self.kv.ids), head(history))
            backend_s += time.perf_counter() - t0
            self.kv.extend([token])

        calls = None
        if splitter is None:
            emit(stream.finish(), final=True)
        else:
            from .tools import parse_calls
            tail = splitter.push(stream.finish())
            parsed = parse_calls(splitter.text, tools)
            if parsed is None:   # no complete call: everything is content
                emit(tail + splitter.rest(), final=True)
            else:
                calls = parsed[1]
                emit(tail, final=True, calls=calls)
                if finish != "abort":
                    finish = "tool_calls"
        result = self._result("".join(text_parts), generated, prompt, prep, finish, reason, t_start, t_prefill,
                              t_first, backend_s, len(prompt) - reuse)
        result.stop_token = stop_token
        result.tool_calls = calls
        result.logprobs = logprobs
        result.token_confidence = [c.to_dict() for c in confidences]
        result.confidence = summarize(confidences).to_dict()
        return result

    def constraint(self, cfg: GenerationConfig):
        """A fresh matcher for the request's constraint (None without one); compiled constraints
        and their mask caches are kept per engine, over a token index built on first use."""
        spec = cfg.constraint
        if spec is None:
            return None
        compiled = self._compile(spec)
        if spec.trigger:
            from .constrain import LazyMatcher
            return LazyMatcher(compiled, spec.trigger)
        return compiled.matcher()

    def _compile(self, spec):
        if self._constraints is None:
            from .constrain import ConstraintCompiler, TokenIndex
            self._constraints = ConstraintCompiler(TokenIndex.for_tokenizer(self.tokenizer, self.info.eos_ids))
        return self._constraints.compile(spec)

    def _logprob_entry(self, c: Candidates, token: int, top: int) -> dict:
        """OpenAI's logprobs content entry for one token: {token, logprob, bytes, top_logprobs}, from
        the model's distribution at temperature 1 (the candidates and the full log-sum-exp)."""
        z = c.logsumexp

        def item(tid: int, logit: float | None) -> dict:
            return {"id": tid, "token": self.tokenizer.decode([tid]), "bytes": list(self.tokenizer.token_bytes(tid)),
                    "logprob": (logit - z) if logit is not None else None}

        logit = c.logits[c.ids.index(token)] if token in c.ids else None
        entry = item(token, logit)
        entry["top_logprobs"] = [item(t, l) for t, l in zip(c.ids[:top], c.logits[:top])]
        return entry

    def _result(self, text: str, generated: list[int], prompt: list[int], prep: Any, finish: str, reason: str,
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
            stop_reason=reason,
            reused_tokens=prep.reused,
            restored_tokens=prep.restored,
            kv_ms=prep.kv_ms,
            ttft_ms=round(1000 * (t_first - t_start), 2) if t_first is not None else 0.0,
            prefill_tok_s=round(fed / prefill_s, 2) if prefill_s > 0 else 0.0,
            decode_tok_s=round(steps / decode_s, 2) if decode_s > 0 and steps else 0.0,
            python_ms_per_token=round(1000 * (decode_s - backend_s) / steps, 3) if steps else 0.0,
            backend_ms_per_token=round(1000 * backend_s / steps, 3) if steps else 0.0,
        )


def _describe(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def _guarded(fn: LogitsProcessor, kind: str) -> LogitsProcessor:
    """A user's processor: what it raises ends the request as a ProcessorError with its traceback."""
    def run(history: Sequence[int], c: Candidates) -> Candidates:
        try:
            out = fn(history, c)
        except (StopGeneration, IntabError):
            raise
        except Exception as e:
            raise ProcessorError(f"the {kind} {_describe(fn)} raised {type(e).__name__}: {e}",
                                 traceback=traceback.format_exc()) from None
        if not isinstance(out, Candidates) or not len(out):
            raise ProcessorError(f"the {kind} {_describe(fn)} returned {type(out).__name__}, not a non-empty Candidates.",
                                 "A logits processor returns the Candidates it was given, changed or not.")
        return out
    return run


def _guarded_sampler(fn: Sampler, vocab: int) -> Callable[[Candidates], int]:
    def run(c: Candidates) -> int:
        try:
            token = fn(c)
        except (StopGeneration, IntabError):
            raise
        except Exception as e:
            raise ProcessorError(f"the sampler {_describe(fn)} raised {type(e).__name__}: {e}",
                                 traceback=traceback.format_exc()) from None
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab:
            raise ProcessorError(f"the sampler {_describe(fn)} returned {token!r}, not a token id in 0..{vocab - 1}.",
                                 "A sampler returns one token id, usually one of the candidates' ids.")
        return token
    return run
