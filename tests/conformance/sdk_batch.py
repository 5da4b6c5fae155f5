"""A user's app: runs a batch of conversation calls through the real Dapr Python SDK.

Reads DAPR_GRPC_PORT / DAPR_HTTP_PORT (and DAPR_API_TOKEN) from the environment like any Dapr app,
reads a JSON list of calls on stdin, prints one JSON list with what the SDK returned for each (the
response as plain data, or the error's gRPC code and details). The same batch is run against daprd
and against parley and the two outputs compared.

A call: ``{"api": "alpha1"|"alpha2", "client": "sync"|"async", "name": …, "inputs": …, other kwargs}``;
alpha2 messages are written ``{"user"|"system"|"developer"|"assistant"|"tool": {...}}``.
``{"api": "metadata"}`` calls ``get_metadata()`` (written with the protojson key names ``id``,
``components``, ``extended``), ``{"api": "set_metadata", "key": …, "value": …}`` ``set_metadata()``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Mapping
from typing import Any

from dapr.aio.clients import DaprClient as AsyncDaprClient
from dapr.clients import DaprClient
from dapr.clients.grpc import conversation as c
from google.protobuf import duration_pb2, json_format, struct_pb2


def _content(texts: list[str]) -> list[c.ConversationMessageContent]:
    return [c.ConversationMessageContent(text=t) for t in texts]


def _message(spec: dict[str, Any]) -> c.ConversationMessage:
    ((kind, body),) = spec.items()
    if kind == "user":
        return c.ConversationMessage(of_user=c.ConversationMessageOfUser(name=body.get("name"),
                                                                         content=_content(body["content"])))
    if kind == "system":
        return c.ConversationMessage(of_system=c.ConversationMessageOfSystem(name=body.get("name"),
                                                                             content=_content(body["content"])))
    if kind == "developer":
        return c.ConversationMessage(of_developer=c.ConversationMessageOfDeveloper(
            name=body.get("name"), content=_content(body["content"])))
    if kind == "assistant":
        calls = [c.ConversationToolCalls(id=t.get("id"), function=c.ConversationToolCallsOfFunction(
            name=t["name"], arguments=t["arguments"]) if "name" in t else None) for t in body.get("tool_calls", [])]
        return c.ConversationMessage(of_assistant=c.ConversationMessageOfAssistant(
            name=body.get("name"), content=_content(body.get("content", [])), tool_calls=calls))
    if kind == "tool":
        return c.ConversationMessage(of_tool=c.ConversationMessageOfTool(
            tool_id=body.get("tool_id"), name=body["name"], content=_content(body["content"])))
    if kind == "empty":
        return c.ConversationMessage()
    raise ValueError(kind)


def _kwargs(call: dict[str, Any]) -> dict[str, Any]:
    kw = {k: v for k, v in call.items() if k not in ("api", "client", "inputs", "tools", "response_format",
                                                      "prompt_cache_retention")}
    if call["api"] == "alpha1":
        kw["inputs"] = [c.ConversationInput(**i) for i in call["inputs"]]
        return kw
    kw["inputs"] = [c.ConversationInputAlpha2(messages=[_message(m) for m in i["messages"]],
                                              scrub_pii=i.get("scrub_pii")) for i in call["inputs"]]
    if "tools" in call:
        kw["tools"] = [c.ConversationTools(function=c.ConversationToolsFunction(**t)) for t in call["tools"]]
    if "response_format" in call:
        fmt = struct_pb2.Struct()
        fmt.update(call["response_format"])
        kw["response_format"] = fmt
    if "prompt_cache_retention" in call:
        kw["prompt_cache_retention"] = duration_pb2.Duration(seconds=call["prompt_cache_retention"])
    return kw


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "DESCRIPTOR"):
        return json_format.MessageToDict(value)
    return value


def _error(exc: Exception) -> dict[str, Any]:
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    return {"error": code().name if callable(code) else type(exc).__name__,
            "details": details() if callable(details) else str(exc)}


def _metadata(response: Any) -> dict[str, Any]:
    return {"id": response.application_id, "extended": dict(response.extended_metadata),
            "components": [{"name": c.name, "type": c.type, "version": c.version,
                            "capabilities": list(c.capabilities)} for c in response.registered_components],
            "actors": dict(response.active_actors_count)}


def run_sync(calls: list[dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    with DaprClient() as client:
        for call in calls:
            method = client.converse_alpha1 if call["api"] == "alpha1" else client.converse_alpha2
            try:
                if call["api"] == "metadata":
                    out.append(_metadata(client.get_metadata()))
                elif call["api"] == "set_metadata":
                    client.set_metadata(call["key"], call["value"])
                    out.append({})
                else:
                    out.append(_plain(method(**_kwargs(call))))
            except Exception as exc:
                out.append(_error(exc))
    return out


async def run_async(calls: list[dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    async with AsyncDaprClient() as client:
        for call in calls:
            method = client.converse_alpha1 if call["api"] == "alpha1" else client.converse_alpha2
            try:
                if call["api"] == "metadata":
                    out.append(_metadata(await client.get_metadata()))
                elif call["api"] == "set_metadata":
                    await client.set_metadata(call["key"], call["value"])
                    out.append({})
                else:
                    out.append(_plain(await method(**_kwargs(call))))
            except Exception as exc:
                out.append(_error(exc))
    return out


def main() -> None:
    calls = json.load(sys.stdin)
    sync = [call for call in calls if call.get("client", "sync") == "sync"]
    aio = [call for call in calls if call.get("client") == "async"]
    results = dict(zip((id(c) for c in sync), run_sync(sync), strict=True))
    if aio:
        results.update(zip((id(c) for c in aio), asyncio.run(run_async(aio)), strict=True))
    print(json.dumps([results[id(call)] for call in calls], default=str))


if __name__ == "__main__":
    main()
