"""intab's public Python API: the same calls in the tab (Pyodide, PyScript, JupyterLite) and under CPython.

    engine = await intab.load()                         # the site's default model
    result = await engine.chat([{"role": "user", "content": "Hi"}], max_tokens=64)
    async for delta in engine.stream(messages): ...     # cancelling the task aborts the answer
    completion = await engine.chat.completions.create(messages=messages)   # OpenAI-shaped objects
    engine.tokenize("text"); engine.detokenize(ids); engine.count_tokens(messages)
    chat = engine.session(system="Be brief."); await chat.send("Hi")

Where the model runs is the backend's business (`intab.tab` in the tab: the bridge to the model
runtime's worker; `intab_host` under CPython: onnxruntime); everything here is plain Python over
`intab.engine.Engine`. docs/python.md is the user's guide.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, Sequence

from .candidates import Candidates
from .engine import Delta, Engine, GenerationResult, Request
from .errors import BackendError, IntabError, InvalidParameter
from .openai_types import (
    ChatCompletion, ChatCompletionChunk, ChatCompletionMessage, ChatCompletionMessageToolCall, ChatCompletionTokenLogprob,
    Choice, ChoiceDelta, ChoiceLogprobs, ChunkChoice, Completion, CompletionChoice, CompletionUsage, Function,
    TopLogprob,
)

Messages = Sequence[dict]
ProgressCallback = Callable[[dict], Any]
# Options the API takes besides GenerationConfig's own fields.
_API_OPTIONS = ("logits_processors", "sampler")


class SyncUnavailable(IntabError):
    """A *_sync call where this Python cannot block on a coroutine."""
    hint = "Use the async call with `await` (for example `await engine.chat(...)`)."


# ---------------------------------------------------------------------------------------------
# results
@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass
class TokenLogprob:
    """One generated token: its log-probability at temperature 1 over the whole vocabulary (exact:
    logit - logsumexp), and the most likely alternatives at that step when top_logprobs > 0."""
    id: int
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[tuple[int, str, float]] = field(default_factory=list)   # (id, token, logprob)


@dataclass
class ChatResult:
    text: str
    token_ids: list[int]
    finish_reason: str                 # "stop" | "length" | "abort" | "tool_calls"
    usage: Usage
    logprobs: list[TokenLogprob] | None = None
    confidence: dict | None = None     # per answer (intab.confidence.AnswerConfidence): logprob, entropy, margin
    token_confidence: list[dict] = field(default_factory=list)   # per token: logprob, top_logprob, margin, entropy, tail_mass
    stop_reason: str = ""              # eos | stop_string | special_token | processor | max_tokens | context_full | abort
    reused_tokens: int = 0
    ttft_ms: float = 0.0
    prefill_tok_s: float = 0.0
    decode_tok_s: float = 0.0
    python_ms_per_token: float = 0.0
    backend_ms_per_token: float = 0.0
    # with tools=[...]: the calls the model made, in OpenAI's shape ({id, type: 'function',
    # function: {name, arguments: JSON text}}); `text` is then what it wrote before them
    tool_calls: list[dict] | None = None

    @property
    def message(self) -> dict:
        """The answer as a message to append to a conversation (with its tool_calls, if any)."""
        if self.tool_calls:
            return {"role": "assistant", "content": self.text or None, "tool_calls": self.tool_calls}
        return {"role": "assistant", "content": self.text}

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return self.text


# ---------------------------------------------------------------------------------------------
# the text side: tokenizer, chat template, model facts. Needs no backend.
class TextModel:
    """Tokenizing and templating exactly as the model's reference (HF tokenizers, transformers'
    apply_chat_template), with no model runtime: `await intab.load_tokenizer()` or
    `TextModel.from_files(files)`."""

    def __init__(self, engine: Engine, model_id: str = ""):
        self._engine = engine
        self.model_id = model_id

    @classmethod
    def from_files(cls, files: dict[str, str], model_id: str = "") -> "TextModel":
        """files: {name: text} of tokenizer.json, tokenizer_config.json, config.json,
        generation_config.json (manifest.json optional)."""
        return cls(Engine.from_files(dict(files), _NoBackend()), model_id)

    @property
    def tokenizer(self):
        return self._engine.tokenizer

    @property
    def context_window(self) -> int:
        return self._engine.info.max_context

    @property
    def vocab_size(self) -> int:
        return self._engine.info.vocab_size

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._engine.info.eos_ids

    @property
    def defaults(self) -> dict:
        """The sampling defaults every request starts from (generation_config.json over intab's)."""
        cfg = self._engine.config()
        return {k: getattr(cfg, k) for k in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_tokens")}

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`, as `tokenizers.Tokenizer.encode(text).ids` (special tokens the
        tokenizer's post-processor adds, e.g. a BOS, included unless add_special_tokens=False)."""
        _need_str("text", text)
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)

    def detokenize(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of `ids`. Special tokens are skipped by default, as `tokenizers`' decode does."""
        return self.tokenizer.decode(_ids("ids", ids), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: Messages, *, add_generation_prompt: bool = False, tokenize: bool = True,
                            return_dict: bool = True, tools: list[dict] | None = None, **template_vars: Any) -> Any:
        """transformers' `apply_chat_template`, with its defaults: ids in a dict
        ({"input_ids", "attention_mask"}) by default, the ids alone with return_dict=False, the
        text with tokenize=False. Pass add_generation_prompt=True for what the model is given to
        answer (what chat() sends)."""
        text = self._engine.apply_chat_template(_messages(messages), add_generation_prompt=add_generation_prompt,
                                                tools=tools, **template_vars)
        if not tokenize:
            return text
        ids = self.tokenizer.encode(text, add_special_tokens=False)   # transformers: the template has them
        return {"input_ids": ids, "attention_mask": [1] * len(ids)} if return_dict else ids

    def count_tokens(self, messages: Messages | str, add_generation_prompt: bool = True) -> int:
        """Tokens the model would read: for messages, the templated prompt with the generation
        prompt (what chat() sends); for a str, the text alone."""
        if isinstance(messages, str):
            return len(self.tokenize(messages))
        return len(self.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, return_dict=False))


# ---------------------------------------------------------------------------------------------
# the engine
class IntabEngine(TextModel):
    """A loaded model: `await intab.load(...)`. Requests queue (one KV cache): concurrent calls all
    get their answers, in the order they were made."""

    def __init__(self, engine: Engine, model_id: str = "", info: dict | None = None,
                 release: Callable[[], Awaitable[None] | None] | None = None):
        super().__init__(engine, model_id)
        self.info = {"model": {"id": model_id, "contextWindow": engine.info.max_context,
                               "vocabSize": engine.info.vocab_size},
                     "backend": engine.backend.name, "defaults": self.defaults, **(info or {})}
        self._release = release
        self._closed = False
        self.chat = _Chat(self)
        self.completions = _Completions(self)

    # -- generation ---------------------------------------------------------------------------
    async def _chat(self, messages: Messages, options: dict) -> ChatResult:
        return await self._run(*self._prepare(messages, options), None)

    def stream(self, messages: Messages, **options: Any) -> "TextStream":
        """`async for delta in engine.stream(messages)`: the answer's text as it comes. Cancelling
        the consuming task (or leaving the loop early) aborts the generation; `.result` holds the
        ChatResult once the stream has ended."""
        return TextStream(self, *self._prepare(messages, options))

    async def complete(self, prompt: str, **options: Any) -> ChatResult:
        """Plain text completion (base models): the text is continued as is, no chat template."""
        return await self._run(*self._prepare(None, options, prompt), None)

    def stream_completion(self, prompt: str, **options: Any) -> "TextStream":
        return TextStream(self, *self._prepare(None, options, prompt))

    def session(self, system: str | None = None, messages: Messages | None = None, **options: Any) -> "ChatSession":
        """A conversation of its own: it keeps its history; `options` are its defaults."""
        return ChatSession(self, system=system, messages=messages, options=options)

    def abort(self) -> None:
        """End the running answer now (finish_reason "abort"); queued requests then run."""
        self._engine.abort()

    async def reset(self) -> None:
        """Forget the KV caches (the next request prefills from scratch)."""
        await self._engine.reset()

    async def unload(self) -> None:
        """Free the model runtime. The engine refuses requests afterwards."""
        if self._closed:
            return
        self._closed = True
        self._engine.abort()
        if self._release is not None:
            r = self._release()
            if asyncio.iscoroutine(r) or isinstance(r, asyncio.Future):
                await r

    close = unload

    async def __aenter__(self) -> "IntabEngine":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.unload()

    @property
    def sync(self) -> "SyncEngine":
        """Blocking versions of the calls, where this Python can block (see SyncEngine)."""
        return SyncEngine(self)

    # -- internals ----------------------------------------------------------------------------
    def _prepare(self, messages: Messages | None, options: dict, prompt: str | None = None) -> tuple[Request, dict]:
        """Check everything a request can fail on before it queues: options, messages, the prompt's
        length (typed errors naming the option)."""
        self._check_open()
        extra = _split_options(options)
        cfg = {k: v for k, v in options.items() if k not in _API_OPTIONS}
        if messages is None:
            _need_str("prompt", prompt)
            return self._engine.prepare_completion(prompt, cfg), extra
        return self._engine.prepare_chat(_messages(messages), cfg), extra

    def _check_open(self) -> None:
        if self._closed:
            raise IntabError("the engine was unloaded.", "Load the model again with `await intab.load(...)`.")

    async def _run(self, request: Request, extra: dict, on_delta: Callable[[Delta], None] | None) -> ChatResult:
        """One request. The engine queues it behind the others. Cancelling the caller aborts the
        generation at its next step and waits for it to end, so the engine stays consistent."""
        self._check_open()
        task = asyncio.ensure_future(self._engine.run(request, on_delta, logits_processors=extra.get("logits_processors", ()),
                                                      sampler=extra.get("sampler")))
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            self._engine.abort()
            try:
                await task
            except BaseException:
                pass
            raise
        return self._result(result)

    def _result(self, r: GenerationResult) -> ChatResult:
        return ChatResult(
            text=r.text, token_ids=list(r.token_ids), finish_reason=r.finish_reason,
            usage=Usage(r.prompt_tokens, r.new_tokens, r.prompt_tokens + r.new_tokens),
            logprobs=self._token_logprobs(r) if r.logprobs is not None else None,
            confidence=r.confidence or None, token_confidence=list(r.token_confidence), stop_reason=r.stop_reason,
            reused_tokens=r.reused_tokens, ttft_ms=r.ttft_ms, prefill_tok_s=r.prefill_tok_s,
            decode_tok_s=r.decode_tok_s, python_ms_per_token=r.python_ms_per_token,
            backend_ms_per_token=r.backend_ms_per_token, tool_calls=r.tool_calls)

    def _token_logprobs(self, r: GenerationResult) -> list[TokenLogprob]:
        """The engine's OpenAI-style entries ({id, token, bytes, logprob, top_logprobs}) as TokenLogprob."""
        out = []
        for tid, e in zip(r.token_ids, r.logprobs or []):
            lp = e["logprob"] if e["logprob"] is not None else float("-inf")
            alts = [(int(a["id"]), a["token"], float(a["logprob"])) for a in e.get("top_logprobs", [])]
            out.append(TokenLogprob(int(e.get("id", tid)), e["token"], lp, list(e["bytes"]), alts))
        return out


class _NoBackend:
    """The backend of a TextModel: tokenizing and templating need none."""
    name = "none"
    kv_length = 0

    async def forward(self, ids: Sequence[int], start: int, num_candidates: int) -> Candidates:
        raise BackendError("this model was loaded for tokenizing only.",
                           "Use `await intab.load(...)` to generate text.")

    async def truncate(self, length: int) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# streams and sessions
class TextStream:
    """An async iterator of text deltas over one request; `.result` once it has ended."""

    def __init__(self, engine: IntabEngine, request: Request, extra: dict):
        self._engine = engine
        self._request = request
        self._extra = extra
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Future | None = None
        self.result: ChatResult | None = None

    def __aiter__(self) -> "TextStream":
        return self

    def _start(self) -> None:
        queue: asyncio.Queue = asyncio.Queue()
        self._queue = queue

        async def produce() -> ChatResult:
            try:
                return await self._engine._run(self._request, self._extra,
                                               lambda d: queue.put_nowait(d.text) if d.text else None)
            finally:
                queue.put_nowait(_END)

        self._task = asyncio.ensure_future(produce())

    async def __anext__(self) -> str:
        if self._task is None:
            self._start()
        assert self._queue is not None and self._task is not None
        try:
            item = await self._queue.get()
        except asyncio.CancelledError:
            await self.aclose()
            raise
        if item is _END:
            self.result = await self._task    # re-raises the request's error
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Stop early: abort the generation (if it still runs) and wait for it to end."""
        if self._task is not None and not self._task.done():
            self._engine._engine.abort()
            try:
                self.result = await self._task
            except BaseException:
                pass

    async def text(self) -> str:
        """Consume the stream; the whole text."""
        return "".join([d async for d in self])


_END = object()


class ChatSession:
    """A conversation with its own history on a shared engine (`engine.session(system=...)`)."""

    def __init__(self, engine: IntabEngine, system: str | None = None, messages: Messages | None = None,
                 options: dict | None = None):
        self.engine = engine
        self.messages: list[dict] = [dict(m) for m in _messages(messages)] if messages else []
        if system is not None:
            _need_str("system", system)
            self.messages = [m for m in self.messages if m.get("role") != "system"]
            self.messages.insert(0, {"role": "system", "content": system})
        self.options = dict(options or {})
        engine._engine.config({k: v for k, v in self.options.items() if k not in _API_OPTIONS})
        _split_options(self.options)
        self.last: ChatResult | None = None

    async def send(self, content: str, **options: Any) -> ChatResult:
        """Add a user message, answer it; both enter the history (an aborted answer too, as far as it got)."""
        _need_str("content", content)
        turn = self.messages + [{"role": "user", "content": content}]
        result = await self.engine._chat(turn, {**self.options, **options})
        self.messages = turn + [result.message]
        self.last = result
        return result

    chat = send

    def stream(self, content: str, **options: Any) -> TextStream:
        """Like send(), streamed; the history is updated when the stream ends."""
        _need_str("content", content)
        turn = self.messages + [{"role": "user", "content": content}]
        stream = self.engine.stream(turn, **{**self.options, **options})
        session = self

        class _SessionStream(TextStream):
            async def __anext__(inner) -> str:  # noqa: N805
                try:
                    return await TextStream.__anext__(inner)
                except StopAsyncIteration:
                    session.messages = turn + [inner.result.message]
                    session.last = inner.result
                    raise

        stream.__class__ = _SessionStream
        return stream

    def fork(self) -> "ChatSession":
        """A copy of this conversation that goes on separately."""
        return ChatSession(self.engine, messages=self.messages, options=self.options)

    clone = fork

    def clear(self) -> None:
        """Forget the history (the system message stays)."""
        self.messages = [m for m in self.messages if m.get("role") == "system"]
        self.last = None

    def count_tokens(self) -> int:
        return self.engine.count_tokens(self.messages) if self.messages else 0


# ---------------------------------------------------------------------------------------------
# OpenAI-shaped surface: engine.chat(...) and engine.chat.completions.create(...)
class _Chat:
    """`await engine.chat(messages, **options)` -> ChatResult; `engine.chat.completions.create(...)`."""

    def __init__(self, engine: IntabEngine):
        self._engine = engine
        self.completions = _ChatCompletions(engine)

    def __call__(self, messages: Messages, **options: Any) -> Awaitable[ChatResult]:
        return self._engine._run(*self._engine._prepare(messages, options), None)


def _openai_options(kw: dict, engine: IntabEngine) -> tuple[dict, bool, bool]:
    """OpenAI request fields -> intab options; (options, stream, include_usage). Unsupported
    fields are refused by name, never ignored."""
    kw = dict(kw)
    stream = bool(kw.pop("stream", False))
    so = kw.pop("stream_options", None) or {}
    if not isinstance(so, dict) or set(so) - {"include_usage"}:
        raise _bad("stream_options", "must be {'include_usage': bool}")
    kw.pop("model", None)   # the loaded model answers; accepted so OpenAI code runs unchanged
    n = kw.pop("n", 1)
    if n != 1:
        raise _bad("n", "must be 1: intab generates one answer per request")
    if "max_completion_tokens" in kw:
        kw["max_tokens"] = kw.pop("max_completion_tokens")
    for name in ("frequency_penalty", "presence_penalty"):
        if kw.get(name) not in (None, 0, 0.0):
            raise InvalidParameter(f"{name} is not supported.", "Use repetition_penalty (transformers' definition).")
        kw.pop(name, None)
    if kw.get("parallel_tool_calls") is True:
        raise InvalidParameter("parallel_tool_calls=True is not supported: tool calls come one at a time.",
                               "Leave parallel_tool_calls out, or set it to False.", param="parallel_tool_calls")
    kw.pop("parallel_tool_calls", None)
    for name in ("logit_bias", "user", "functions", "function_call"):
        if kw.get(name) is not None:
            raise InvalidParameter(f"{name} is not supported by this version of intab.",
                                   f"Remove {name}; for your own token rules pass logits_processors=[...].")
        kw.pop(name, None)
    return kw, stream, bool(so.get("include_usage"))


class _ChatCompletions:
    def __init__(self, engine: IntabEngine):
        self._engine = engine

    async def create(self, *, messages: Messages, **kw: Any) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        """OpenAI's `client.chat.completions.create`: a ChatCompletion, or with stream=True an async
        iterator of ChatCompletionChunk (as `openai.AsyncOpenAI`)."""
        options, stream, include_usage = _openai_options(kw, self._engine)
        engine = self._engine
        rid, created, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), engine.model_id
        if stream:
            return _chunks(engine, engine.stream(messages, **options), rid, created, model, include_usage, options)
        r = await engine._chat(messages, options)
        return ChatCompletion(
            id=rid, created=created, model=model,
            choices=[Choice(index=0, message=_message(r), finish_reason=r.finish_reason,
                            logprobs=_choice_logprobs(r))],
            usage=CompletionUsage(**asdict(r.usage)), intab=_intab_fields(r))


async def _chunks(engine: IntabEngine, stream: TextStream, rid: str, created: int, model: str,
                  include_usage: bool, options: dict) -> AsyncIterator[ChatCompletionChunk]:
    def chunk(delta: ChoiceDelta, finish: str | None = None, **extra: Any) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=rid, created=created, model=model,
                                   choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish)], **extra)
    try:
        yield chunk(ChoiceDelta(role="assistant", content=""))
        async for text in stream:
            yield chunk(ChoiceDelta(content=text))
    finally:
        await stream.aclose()
    r = stream.result
    assert r is not None
    if r.tool_calls:
        yield chunk(ChoiceDelta(tool_calls=[_call(c, i) for i, c in enumerate(r.tool_calls)]))
    last = chunk(ChoiceDelta(), r.finish_reason, intab=_intab_fields(r))
    last.choices[0].logprobs = _choice_logprobs(r)
    yield last
    if include_usage:
        yield ChatCompletionChunk(id=rid, created=created, model=model, choices=[],
                                  usage=CompletionUsage(**asdict(r.usage)))


class _Completions:
    """`engine.completions.create(prompt=...)`: plain text completion, OpenAI's legacy shape."""

    def __init__(self, engine: IntabEngine):
        self._engine = engine

    async def create(self, *, prompt: str, **kw: Any) -> Completion:
        options, stream, _ = _openai_options(kw, self._engine)
        if stream:
            raise _bad("stream", "is not supported for completions; use engine.stream_completion(prompt)")
        for name in ("tools", "tool_choice"):
            if options.get(name) is not None:
                raise _bad(name, "is for chat: tool calls need the chat template (engine.chat.completions.create)")
        if isinstance(options.get("logprobs"), int) and not isinstance(options["logprobs"], bool):
            options["top_logprobs"] = options["logprobs"]   # legacy: logprobs=N means N alternatives
            options["logprobs"] = True
        r = await self._engine.complete(prompt, **options)
        lp = None
        if r.logprobs is not None:
            lp = {"tokens": [t.token for t in r.logprobs], "token_logprobs": [t.logprob for t in r.logprobs],
                  "top_logprobs": [{s: l for _, s, l in t.top_logprobs} for t in r.logprobs]}
        return Completion(id=f"cmpl-{uuid.uuid4().hex[:24]}", created=int(time.time()), model=self._engine.model_id,
                          choices=[CompletionChoice(index=0, text=r.text, finish_reason=r.finish_reason, logprobs=lp)],
                          usage=CompletionUsage(**asdict(r.usage)), intab=_intab_fields(r))


def _call(c: dict, index: int | None = None) -> ChatCompletionMessageToolCall:
    return ChatCompletionMessageToolCall(id=c["id"], function=Function(**c["function"]), index=index)


def _message(r: ChatResult) -> ChatCompletionMessage:
    if r.tool_calls:
        return ChatCompletionMessage(content=r.text or None, tool_calls=[_call(c) for c in r.tool_calls])
    return ChatCompletionMessage(content=r.text)


def _choice_logprobs(r: ChatResult) -> ChoiceLogprobs | None:
    if r.logprobs is None:
        return None
    return ChoiceLogprobs(content=[
        ChatCompletionTokenLogprob(token=t.token, logprob=t.logprob, bytes=t.bytes,
                                   top_logprobs=[TopLogprob(token=s, logprob=l, bytes=list(s.encode("utf-8")))
                                                 for _, s, l in t.top_logprobs])
        for t in r.logprobs])


def _intab_fields(r: ChatResult) -> dict:
    return {"token_ids": r.token_ids, "ttft_ms": r.ttft_ms, "prefill_tok_s": r.prefill_tok_s,
            "decode_tok_s": r.decode_tok_s, "reused_tokens": r.reused_tokens, "confidence": r.confidence,
            "stop_reason": r.stop_reason}


# ---------------------------------------------------------------------------------------------
# blocking wrappers
def can_block() -> bool:
    """Whether this thread may block on a coroutine: in Pyodide where `pyodide.ffi.can_run_sync()`
    (JSPI), under CPython where no event loop runs in this thread (not inside Jupyter's)."""
    try:
        from pyodide.ffi import can_run_sync  # type: ignore[import-not-found]
    except ImportError:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return True
        return False
    return bool(can_run_sync())


def run_sync(coro: Awaitable[Any]) -> Any:
    """Block until `coro` is done (see can_block); a SyncUnavailable error where this Python cannot."""
    try:
        from pyodide.ffi import can_run_sync, run_sync as pyodide_run_sync  # type: ignore[import-not-found]
    except ImportError:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return _host_loop().run_until_complete(coro)
        _close(coro)
        raise SyncUnavailable("an event loop is already running in this thread (a notebook?), so a call cannot block.")
    if not can_run_sync():
        _close(coro)
        raise SyncUnavailable("this Pyodide cannot block on a coroutine here (pyodide.ffi.can_run_sync() is "
                              "false: no JSPI, or not called from code Pyodide runs asynchronously).")
    return pyodide_run_sync(coro)


_LOOP: asyncio.AbstractEventLoop | None = None


def _host_loop() -> asyncio.AbstractEventLoop:
    """One loop for every blocking call under CPython, so an engine's state stays on one loop."""
    global _LOOP  # noqa: PLW0603 - the process's one private loop, not engine state
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = asyncio.new_event_loop()
    return _LOOP


def _close(coro: Any) -> None:
    if asyncio.iscoroutine(coro):
        coro.close()


class SyncEngine:
    """`engine.sync`: the same calls, blocking. Only where can_block() is true; elsewhere each call
    raises SyncUnavailable, which says to use `await`."""

    def __init__(self, engine: IntabEngine):
        self._engine = engine

    def chat(self, messages: Messages, **options: Any) -> ChatResult:
        return run_sync(self._engine.chat(messages, **options))

    def complete(self, prompt: str, **options: Any) -> ChatResult:
        return run_sync(self._engine.complete(prompt, **options))

    def stream(self, messages: Messages, **options: Any) -> Iterator[str]:
        stream = self._engine.stream(messages, **options)
        try:
            while True:
                try:
                    yield run_sync(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            if stream._task is not None and not stream._task.done():
                run_sync(stream.aclose())

    def create(self, **kw: Any) -> ChatCompletion:
        if kw.get("stream"):
            raise _bad("stream", "is not supported by the blocking wrapper; use engine.sync.stream(messages)")
        return run_sync(self._engine.chat.completions.create(**kw))

    def unload(self) -> None:
        run_sync(self._engine.unload())


# ---------------------------------------------------------------------------------------------
# option checks
def _split_options(options: dict) -> dict:
    """The API's own options (logits_processors, sampler), checked; the rest is GenerationConfig's."""
    if not isinstance(options, dict):
        raise InvalidParameter(f"options must be keyword arguments, got {type(options).__name__}.")
    extra = {k: options[k] for k in _API_OPTIONS if options.get(k) is not None}
    procs = extra.get("logits_processors")
    if procs is not None and (not isinstance(procs, (list, tuple)) or not all(callable(p) for p in procs)):
        raise _bad("logits_processors", "must be a list of functions (history, candidates) -> candidates")
    if "sampler" in extra and not callable(extra["sampler"]):
        raise _bad("sampler", "must be a function (candidates) -> token id")
    return extra


def _bad(name: str, rule: str) -> InvalidParameter:
    return InvalidParameter(f"{name} {rule}.", param=name)


def _need_str(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _bad(name, f"must be a str, not {type(value).__name__}")


def _ids(name: str, ids: Any) -> list[int]:
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise _bad(name, "must be a list of token ids")
    out = list(ids)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in out):
        raise _bad(name, "must be a list of integer token ids")
    return out


def _messages(messages: Any) -> list[dict]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]   # a bare string is one user message
    if not isinstance(messages, (list, tuple)):
        raise _bad("messages", f"must be a list of {{role, content}} dicts, not {type(messages).__name__}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _bad("messages", f"item {i} must be a dict with a 'role' and 'content'")
        out.append(m)
    return out


__all__ = ["ChatResult", "ChatSession", "IntabEngine", "SyncEngine", "SyncUnavailable", "TextModel", "TextStream",
           "TokenLogprob", "Usage", "can_block", "run_sync"]
