"""The soak, short (issue 14, items 1 and 7): through the public API in Chromium with the real
model, 8 turns of one conversation (context_overflow 'drop_oldest'; SmolLM2's context is 8192
tokens, so only the long soak reaches it) and 6 conversations on one engine, with memory by turn; sampled greedy answers
are replayed on a fresh engine and must be the same text. `build.py soak` runs the long one
(200 turns, 50 conversations) and prints the curve (tools/soak/soak.py)."""
from __future__ import annotations

import pytest

from fuzz_site import fuzz_site, open_engine_page

# After warm-up (the first measure), memory may move by the engine's bounded caches: the KV
# snapshots of other conversations are capped at 128 MB (py/intab/engine.py, kv_snapshot_bytes);
# a single conversation needs none, and 10 short ones need ~10 x 1.4 MB (SmolLM2: 30 layers x
# 2 x 3 KV heads x 64 x 4 bytes = 46 kB per token, ~30 tokens each).
GROWTH_ONE = 32 << 20
GROWTH_MANY = 64 << 20
EAGER_MEMORY = "--enable-blink-features=ForceEagerMeasureMemory"


@pytest.fixture(scope="module")
def soak_page(playwright, browser_type_launch_args, serve, static_root, tmp_path_factory):
    url = serve(fuzz_site(static_root, tmp_path_factory.mktemp("soak-site")))
    browser = playwright.chromium.launch(**{**browser_type_launch_args, "args": [*browser_type_launch_args["args"], EAGER_MEMORY]})
    page = browser.new_page()
    open_engine_page(page, url, soak="soak")
    yield page
    browser.close()


def replayed_on_fresh(page, samples, max_tokens: int) -> list:
    """The sampled greedy answers asked again of a fresh engine: those that differ."""
    return page.evaluate("""async ([samples, n]) => {
        const fresh = await intab.create({ backend: 'wasm' });
        try { return await soak.replay(fresh, samples, n); } finally { fresh.unload(); }
    }""", [samples, max_tokens])


def growth(curve) -> int:
    """Memory growth after the first measure (warm-up: the engine's first answer)."""
    return max(p["bytes"] for p in curve) - curve[0]["bytes"]


def test_one_conversation_memory_stays_bounded_answers_as_fresh(soak_page):
    r = soak_page.evaluate("() => soak.longConversation(engine, { turns: 8, maxTokens: 16, every: 4, sample: [1, 7] })")
    curve = r["curve"]
    print("one conversation:", [(p["turn"], round(p["bytes"] / 2**20, 1), p["prompt_tokens"], p["dropped"]) for p in curve])
    assert curve[0]["source"] == "measureUserAgentSpecificMemory"
    assert growth(curve) < GROWTH_ONE, curve
    bad = replayed_on_fresh(soak_page, r["samples"], 16)
    assert bad == [], bad


def test_many_conversations_memory_bounded_answers_as_fresh(soak_page):
    r = soak_page.evaluate("() => soak.manyConversations(engine, { conversations: 6, turnsEach: 2, maxTokens: 8, sample: [0, 5] })")
    curve = r["curve"]
    print("6 conversations:", [(p["round"], p["conversation"], round(p["bytes"] / 2**20, 1), p["restored"]) for p in curve])
    assert growth(curve) < GROWTH_MANY, curve
    bad = replayed_on_fresh(soak_page, r["samples"], 8)
    assert bad == [], bad
