"""A user's app: the real Dapr Python SDK's metadata and shutdown calls, as its own process.

Reads DAPR_HTTP_PORT / DAPR_GRPC_PORT (and DAPR_API_TOKEN) from the environment like any Dapr app,
runs the named scenario and prints one JSON line with what the SDK returned.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from dapr.aio.clients import DaprClient as AsyncDaprClient
from dapr.clients import DaprClient


def _plain(response: Any) -> dict[str, Any]:
    return {"application_id": response.application_id, "extended_metadata": dict(response.extended_metadata),
            "registered_components": [[c.name, c.type, c.version, list(c.capabilities)]
                                      for c in response.registered_components],
            "active_actors_count": dict(response.active_actors_count)}


def metadata() -> object:
    with DaprClient() as d:
        d.set_metadata("sdkKey", "sdk value")
        return _plain(d.get_metadata())


def metadata_async() -> object:
    async def run() -> object:
        async with AsyncDaprClient() as d:
            await d.set_metadata("asyncKey", "async value")
            return _plain(await d.get_metadata())

    return asyncio.run(run())


def error() -> object:
    with DaprClient() as d:
        try:
            d.get_metadata()
        except Exception as exc:
            code = getattr(exc, "code", None)
            return {"error": code().name if callable(code) else type(exc).__name__}
    return {"error": None}


def shutdown() -> object:
    with DaprClient() as d:
        d.shutdown()
    return {"shutdown": True}


if __name__ == "__main__":
    print(json.dumps({"metadata": metadata, "metadata_async": metadata_async, "error": error,
                      "shutdown": shutdown}[sys.argv[1]]()))
