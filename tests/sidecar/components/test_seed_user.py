"""The OpenAI API's ``seed`` and ``user`` reach the providers whose APIs have them, under each API's own
name (Anthropic's ``user`` is ``metadata.user_id``), and stay home elsewhere (a strict server refuses a
field it does not know); a request that sets neither (every alpha1/alpha2 request) sends neither, as
before."""

from __future__ import annotations

import pytest

from tests.sidecar.components.conftest import PROVIDERS, Harness, text_request

SEED = {  # provider id → where its API takes the seed (None: it has none)
    "openai": "seed", "azure": "seed", "vllm": "seed", "ollama": "seed", "huggingface": "seed",
    "mistral": "random_seed", "deepseek": None, "googleai": None, "anthropic": None, "bedrock": None,
}
USER = {"openai", "azure"}
"""Providers whose API has OpenAI's end-user ``user`` field."""
USER_ID = {"anthropic"}
"""Providers whose API takes the end user as ``metadata.user_id`` (Anthropic's Messages API)."""


def test_every_provider_is_listed() -> None:
    assert set(SEED) == {p.id for p in PROVIDERS}


def _body(harness: Harness) -> dict[str, object]:
    body = harness.fake.last.body
    assert isinstance(body, dict)
    return body


async def test_seed_and_user_reach_the_providers_that_have_them(harness: Harness) -> None:
    await harness.converse(text_request("Hi", seed=1234, user="user-42"))
    body = _body(harness)
    field = SEED[harness.provider.id]
    seeds = {k: v for k, v in body.items() if k in ("seed", "random_seed")}
    assert seeds == ({field: 1234} if field else {})
    assert body.get("user") == ("user-42" if harness.provider.id in USER else None)
    if harness.provider.id in USER_ID:
        assert body["metadata"] == {"user_id": "user-42"}


@pytest.mark.parametrize("seed", [0, -5], ids=["zero", "negative"])
async def test_a_zero_or_negative_seed_is_still_a_seed(harness: Harness, seed: int) -> None:
    await harness.converse(text_request("Hi", seed=seed))
    field = SEED[harness.provider.id]
    seeds = {k: v for k, v in _body(harness).items() if k in ("seed", "random_seed")}
    assert seeds == ({field: seed} if field else {})


async def test_a_request_without_them_sends_neither(harness: Harness) -> None:
    await harness.converse(text_request("Hi"))
    body = _body(harness)
    assert not {"seed", "random_seed", "user"} & set(body)
    if harness.provider.id in USER_ID:
        assert "metadata" not in body


async def test_alpha2_metadata_does_not_become_anthropics(harness: Harness) -> None:
    """An alpha2 request's ``metadata`` (even a ``user`` key in it) never becomes a ``user`` or
    Anthropic's ``metadata.user_id``: Anthropic gets none of it, the OpenAI family its ``metadata``
    object as before, unchanged."""
    metadata = {"user": "user-42", "session": "s-1"}
    await harness.converse(text_request("Hi", metadata=metadata))
    body = _body(harness)
    assert "user" not in body
    if harness.provider.id in USER_ID:
        assert "metadata" not in body
    else:
        assert body.get("metadata") in (None, metadata)
