"""Component types and their metadata, declared once as data.

The component store (``store.build``, through :func:`resolve`) and the operator's validating
webhook read these declarations, so ``kubectl apply`` refuses what a sidecar would refuse; no other
module declares a metadata name or a default (``component_settings`` groups what :func:`resolve`
returns). Names and defaults follow daprd
(components-contrib ``conversation/<x>/metadata.yaml``, ``conversation/models.go``); keys are
matched case-insensitively, as Dapr's mapstructure decoding does.

Model precedence is daprd's: environment variable, then metadata ``model``, then the default.

``factory`` is a ``module:function`` string so that a provider's code, and its dependencies, are
imported only when a Component of that type is loaded. No I/O here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlparse

from parley_sidecar import durations, records
from parley_sidecar.records import set_field as _set

__all__ = [
    "COMMON_FIELDS",
    "TYPES",
    "ComponentType",
    "Field",
    "MetadataError",
    "lookup",
    "resolve",
]

Kind = Literal["string", "duration", "int", "bool", "url", "list", "size"]


@records.frozen
class Field(records.Record):
    """One metadata entry of a Component (``spec.metadata[].name``)."""

    name: str
    kind: Kind = "string"
    default: str | None = None
    required: bool = False
    aliases: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()
    """Accepted values, compared case-insensitively; empty means any."""
    env: str | None = None
    """An environment variable that wins over the metadata value (daprd's model precedence)."""
    minimum: float | None = None
    """Smallest accepted value of an ``int`` or ``duration`` field."""
    description: str = ""

    def __init__(self, name: str, kind: Kind = "string", default: str | None = None, required: bool = False,
                 aliases: tuple[str, ...] = (), allowed: tuple[str, ...] = (), env: str | None = None,
                 minimum: float | None = None, description: str = "") -> None:
        _set(self, "name", name)
        _set(self, "kind", kind)
        _set(self, "default", default)
        _set(self, "required", required)
        _set(self, "aliases", aliases)
        _set(self, "allowed", allowed)
        _set(self, "env", env)
        _set(self, "minimum", minimum)
        _set(self, "description", description)


class MetadataError(ValueError):
    """A Component's metadata is wrong; the message names the field, never its value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"metadata field {field!r}: {reason}")
        self.field = field
        self.reason = reason


@records.frozen
class ComponentType(records.Record):
    name: str
    """``spec.type``, e.g. ``conversation.openai``."""
    factory: str
    """``module:function`` returning a ``base.Conversation``; imported lazily."""
    fields: tuple[Field, ...] = ()
    versions: tuple[str, ...] = ("v1", "v0", "")

    def __init__(self, name: str, factory: str, fields: tuple[Field, ...] = (),
                 versions: tuple[str, ...] = ("v1", "v0", "")) -> None:
        _set(self, "name", name)
        _set(self, "factory", factory)
        _set(self, "fields", fields)
        _set(self, "versions", versions)

    def all_fields(self) -> tuple[Field, ...]:
        return self.fields + COMMON_FIELDS


# Pipeline settings every component accepts (parley's own, beyond daprd; all optional).
COMMON_FIELDS: tuple[Field, ...] = (
    Field("responseCacheTTL", "duration", aliases=("cacheTTL",),
          description="Cache successful responses this long (daprd's name; 0 or absent: no cache)."),
    Field("cacheMaxEntries", "int", default="1000", description="Most responses kept in the cache (LRU)."),
    Field("cacheMaxBytes", "size", default="16Mi", description="Most bytes of responses kept (LRU)."),
    Field("cacheStore", "url", description="redis://host:port/db to share the cache between replicas."),
    Field("timeout", "duration", minimum=0, default="60s", description="Per attempt, upstream request timeout."),
    Field("maxRetries", "int", minimum=0, default="3", description="Retries on 429, 5xx and connection errors."),
    Field("retryBackoff", "duration", minimum=0, default="500ms",
          description="First retry delay; doubles, with jitter."),
    Field("circuitBreakerFailures", "int", minimum=0, default="5",
          description="Consecutive failures that open the circuit."),
    Field("circuitBreakerTimeout", "duration", minimum=0, default="30s",
          description="How long an open circuit rejects calls before one trial."),
    Field("callTimeout", "duration", minimum=0, default="120s",
          description="The whole call: every attempt, backoff and fallback (0: no limit); for a stream, until "
                      "its first piece. A caller's gRPC deadline or HTTP timeout header lowers it."),
    Field("fallback", "list", description="Other component names tried, in order, when this one fails."),
    Field("streamIdleTimeout", "duration", minimum=0, default="60s",
          description="Streams: the longest wait for the next piece once the answer has begun (0: no limit). "
                      "Until the first piece, timeout and callTimeout apply."),
    Field("maxConnections", "int", minimum=1, default="64",
          description="Connections this component keeps to its provider: its own pool, so a slow provider "
                      "never holds another component's connections."),
    Field("maxResponseBytes", "size", minimum=1, default="4Mi",
          description="Largest provider answer read; a larger one fails with a clear error."),
    Field("piiEntities", "list", description="Entity types scrubbed when scrubPII is asked (default: daprd's)."),
    Field("memory", "bool", default="false", description="Keep conversation history per context id."),
    Field("memoryMaxTurns", "int", default="20", description="Most earlier messages sent per conversation."),
    Field("memoryMaxBytes", "size", minimum=0, default="32Ki", aliases=("memoryMaxChars",),
          description="Most bytes of memory the history of one conversation holds (memoryMaxChars, its "
                      "former name, is read as bytes)."),
    Field("memoryMaxTotalBytes", "size", minimum=0, default="16Mi",
          description="Most bytes of memory the history of this component holds in this sidecar (LRU)."),
    Field("memoryTTL", "duration", default="1h", description="Forget a conversation idle this long."),
    Field("memoryMaxConversations", "int", default="10000", description="Most conversations kept (LRU)."),
    Field("memoryStore", "url", description="redis://host:port/db to keep history across restarts and replicas."),
)

_KEY = Field("key", description="API key of the provider.")
_MAX_TOKENS = Field("maxTokens", "int", description="Most tokens the model may answer with, when the request "
                    "names none (components-contrib is adding it to every provider).")
_MODEL_DOC = "Model name; the environment variable named here wins over it, as in daprd."


def _model(default: str, env: str | None) -> Field:
    return Field("model", default=default, env=env, description=_MODEL_DOC)


TYPES: dict[str, ComponentType] = {
    t.name: t
    for t in (
        ComponentType("conversation.echo", "parley_sidecar.components.echo:create"),
        ComponentType(
            "conversation.openai",
            "parley_sidecar.components.openai:create",
            (
                dataclasses.replace(_KEY, required=True),
                # Precedence depends on apiType, so the component resolves it (components/openai.py).
                Field("model", description="Model, or Azure deployment. Default gpt-5-nano (OPENAI_MODEL "
                      "wins); with apiType azure gpt-4.1-nano (AZURE_OPENAI_MODEL wins)."),
                Field("endpoint", "url", description="Base URL, e.g. http://vllm:8000/v1 (OpenAI-compatible)."),
                Field("apiType", default="open_ai", allowed=("open_ai", "azure")),
                Field("apiVersion", description="Azure OpenAI API version (required with apiType azure)."),
                _MAX_TOKENS,
            ),
        ),
        ComponentType(
            "conversation.anthropic",
            "parley_sidecar.components.anthropic:create",
            (
                dataclasses.replace(_KEY, required=True),
                _model("claude-sonnet-4-20250514", "ANTHROPIC_MODEL"),
                Field("endpoint", "url"),
                Field("apiType", default="anthropic", allowed=("anthropic", "foundry")),
                Field("maxTokens", "int", default="2048",
                      description="max_tokens, which Anthropic requires (2048, as daprd's client sends)."),
            ),
        ),
        ComponentType(
            "conversation.googleai",
            "parley_sidecar.components.googleai:create",
            (dataclasses.replace(_KEY, required=True), _model("gemini-2.5-flash-lite", "GOOGLEAI_MODEL"),
             Field("endpoint", "url", default="https://generativelanguage.googleapis.com/v1beta/openai/",
                   description="Google's OpenAI-compatible endpoint (fixed in daprd)."), _MAX_TOKENS),
        ),
        ComponentType(
            "conversation.huggingface",
            "parley_sidecar.components.huggingface:create",
            (dataclasses.replace(_KEY, required=True),
             _model("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "HUGGINGFACE_MODEL"),
             Field("endpoint", "url", default="https://router.huggingface.co/hf-inference/models/{{model}}/v1",
                   description="{{model}} is replaced by the model of each call."), _MAX_TOKENS),
        ),
        ComponentType(
            "conversation.mistral",
            "parley_sidecar.components.mistral:create",
            (dataclasses.replace(_KEY, required=True), _model("open-mistral-7b", "MISTRAL_MODEL"),
             Field("endpoint", "url", default="https://api.mistral.ai/v1",
                   description="Ignored by daprd; parley honours it (proxies, gateways)."), _MAX_TOKENS),
        ),
        ComponentType(
            "conversation.ollama",
            "parley_sidecar.components.ollama:create",
            (dataclasses.replace(_KEY, default="ollama"), _model("llama3.2:latest", "OLLAMA_MODEL"),
             Field("endpoint", "url", default="http://localhost:11434/v1"), _MAX_TOKENS),
        ),
        ComponentType(
            "conversation.deepseek",
            "parley_sidecar.components.deepseek:create",
            (dataclasses.replace(_KEY, required=True), _model("deepseek-chat", None),
             Field("endpoint", "url", default="https://api.deepseek.com"),
             Field("maxTokens", "int", description="max_tokens sent upstream (daprd parses it, never sends it).")),
        ),
        ComponentType(
            "conversation.aws.bedrock",
            "parley_sidecar.components.bedrock:create",
            (
                Field("region", default="us-east-1"),
                Field("endpoint", "url"),
                Field("accessKey"),
                Field("secretKey"),
                Field("sessionToken"),
                Field("assumeRoleArn"),
                Field("trustAnchorArn"),
                Field("trustProfileArn"),
                Field("model", default="amazon.titan-text-lite-v1", description="Bedrock model id or ARN."),
                Field("maxTokens", "int", description="inferenceConfig.maxTokens (the model's default when unset)."),
            ),
        ),
    )
}


def lookup(type_name: str, version: str = "") -> ComponentType | None:
    """The declaration for ``spec.type``/``spec.version``, or None when parley has no such type."""
    ctype = TYPES.get(type_name.lower())
    if ctype is None or version not in ctype.versions:
        return None
    return ctype


def _convert(field: Field, raw: str) -> Any:
    converted = _parse(field, raw.strip())
    if field.minimum is not None and isinstance(converted, (int, float)) and converted < field.minimum:
        raise MetadataError(field.name, f"must be {field.minimum:g} or more")
    return converted


def _parse(field: Field, value: str) -> Any:
    if field.allowed and value.lower() not in field.allowed:
        raise MetadataError(field.name, f"must be one of {', '.join(field.allowed)}")
    match field.kind:
        case "string":
            return value
        case "duration":
            try:
                return durations.parse_duration(value)
            except ValueError as exc:
                raise MetadataError(field.name, str(exc).replace(repr(value), "value")) from None
        case "size":
            try:
                return durations.parse_size(value)
            except ValueError:
                raise MetadataError(field.name, "must be bytes or a quantity like 16Mi") from None
        case "int":
            try:
                return int(value)
            except ValueError:
                raise MetadataError(field.name, "must be an integer") from None
        case "bool":
            if value.lower() in ("true", "1", "yes", "on"):
                return True
            if value.lower() in ("false", "0", "no", "off", ""):
                return False
            raise MetadataError(field.name, "must be true or false")
        case "url":
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https", "redis", "rediss", "unix") or not (
                parsed.netloc or parsed.path
            ):
                raise MetadataError(field.name, "must be an absolute URL such as https://host/path")
            return value
        case "list":
            return tuple(item.strip() for item in value.split(",") if item.strip())
    raise AssertionError(field.kind)  # pragma: no cover


def resolve(
    ctype: ComponentType, raw: Mapping[str, str], env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Typed metadata for one Component: defaults filled, aliases folded, env precedence applied.

    Unknown keys are ignored, as daprd ignores them. Raises :class:`MetadataError` naming the field.
    """
    environ = os.environ if env is None else env
    lowered = {k.lower(): v for k, v in raw.items()}
    out: dict[str, Any] = {}
    for field in ctype.all_fields():
        value: str | None = None
        for key in (field.name, *field.aliases):
            if key.lower() in lowered:
                value = lowered[key.lower()]
                break
        if field.env and environ.get(field.env):
            value = environ[field.env]
        if value is None or (value == "" and field.default is not None):
            value = field.default
        if value is None or value == "":
            if field.required:
                raise MetadataError(field.name, "is required")
            continue
        out[field.name] = _convert(field, value)
    return out
