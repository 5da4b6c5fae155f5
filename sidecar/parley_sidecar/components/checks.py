"""Checks every provider applies, whatever its wire format: to its endpoint metadata at load, and
to an answer before it counts as one. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from parley_sidecar import errors
from parley_sidecar.components import base, catalog

__all__ = ["base_url", "served_model", "useful_answer"]


def base_url(field: str, url: str) -> str:
    """An http(s) base URL without a trailing slash, or MetadataError naming the field."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise catalog.MetadataError(field, "must be an http:// or https:// URL")
    return url.rstrip("/")


def useful_answer(outputs: Sequence[base.Output], request: base.ConverseRequest) -> None:
    """daprd's rule: a forced tool choice answered with nothing at all is a (retryable) failure."""
    if request.tool_choice in ("required", "any") and request.tools and not any(
        c.content or c.tool_calls for o in outputs for c in o.choices
    ):
        raise errors.ProviderError(
            f"LLM returned empty response with no tool calls despite {len(request.tools)} tools being available",
            retryable=True,
        )


def served_model(answer: Mapping[str, Any]) -> str:
    """The model a provider's answer (or streamed chunk) says answered: its ``model`` field, when it
    is a string; else "" (``ConverseResponse.served_model``: spans name it, nothing else)."""
    model = answer.get("model")
    return model if isinstance(model, str) else ""
