"""A user's app: the real Dapr Python SDK, run as its own process against a sidecar.

Reads DAPR_HTTP_PORT / DAPR_GRPC_PORT (and DAPR_API_TOKEN) from the environment like any Dapr app,
runs the named scenario and prints one JSON line with what the SDK returned.
"""

from __future__ import annotations

import json
import sys

from dapr.clients import DaprClient
from dapr.clients.grpc import conversation


def alpha1() -> object:
    with DaprClient() as d:
        inputs = [conversation.ConversationInput(content="sync hello", role="user", scrub_pii=True),
                  conversation.ConversationInput(content="call 10.8.9.1", role="user", scrub_pii=True)]
        r = d.converse_alpha1(name="echo", inputs=inputs, temperature=0.7, context_id="chat-123",
                              metadata={"model": "modelname", "cacheTTL": "10m"})
        return {"context_id": r.context_id, "results": [o.result for o in r.outputs]}


def alpha2() -> object:
    with DaprClient() as d:
        tool = conversation.ConversationToolsFunction(
            name="get_weather", description="weather",
            parameters={"type": "object", "properties": {"location": {"type": "string"},
                                                          "unit": {"type": "string"}}})
        inputs = [conversation.ConversationInputAlpha2(messages=[
            conversation.create_system_message("be brief"),
            conversation.create_user_message("hi"),
            conversation.create_assistant_message("hello"),
        ])]
        r = d.converse_alpha2(name="echo", inputs=inputs, tools=[conversation.ConversationTools(function=tool)],
                              tool_choice="auto", context_id="ctx-2")
        choice = r.outputs[0].choices[0]
        return {
            "context_id": r.context_id,
            "finish_reason": choice.finish_reason,
            "content": choice.message.content,
            "tool_calls": [(t.id, t.function.name, t.function.arguments) for t in choice.message.tool_calls],
        }


def error() -> object:
    with DaprClient() as d:
        try:
            d.converse_alpha1(name="nope", inputs=[conversation.ConversationInput(content="x")])
        except Exception as exc:  # DaprGrpcError
            return {"code": exc.code().name, "details": exc.details()}  # type: ignore[attr-defined]
    return {"code": "OK"}


def slow() -> object:
    """Component ``llm`` never answers: the SDK's timeout (DAPR_API_TIMEOUT_SECONDS) ends the call."""
    with DaprClient() as d:
        try:
            d.converse_alpha2(name="llm", inputs=[conversation.ConversationInputAlpha2(
                messages=[conversation.create_user_message("take your time")])])
        except Exception as exc:  # DaprGrpcError
            return {"code": exc.code().name}  # type: ignore[attr-defined]
    return {"code": "OK"}


if __name__ == "__main__":
    print(json.dumps({"alpha1": alpha1, "alpha2": alpha2, "error": error, "slow": slow}[sys.argv[1]]()))
