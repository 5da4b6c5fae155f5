"""An app on the Python SDK (this project's ``dapr`` 1.19), run by tests/clients/test_python_sdk.py.

``DaprClient()`` finds the sidecar from ``DAPR_HTTP_PORT``/``DAPR_GRPC_PORT`` (it first waits for
``/v1.0/healthz/outbound``); ``get_metadata()`` is gRPC ``GetMetadata``. Prints ``RESULT {json}``.
"""

from __future__ import annotations

import json
from typing import Any

from dapr.clients import DaprClient


def main() -> None:
    result: dict[str, Any]
    try:
        with DaprClient() as client:
            meta = client.get_metadata()
            result = {"ok": True, "result": {
                "application_id": meta.application_id,
                "active_actors_count": dict(meta.active_actors_count),
                "registered_components": sorted(
                    [{"name": c.name, "type": c.type, "version": c.version, "capabilities": list(c.capabilities)}
                     for c in meta.registered_components], key=lambda c: str(c["name"])),
                "extended_metadata": dict(meta.extended_metadata),
            }}
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print("RESULT " + json.dumps({"get_metadata": result}), flush=True)


if __name__ == "__main__":
    main()
