"""The floor: a bare aiohttp handler that parses the JSON body and returns a reply of the same size.

Run as ``python -m bench.floor PORT REPLY_BYTES``; /healthz answers 204.
"""

from __future__ import annotations

import json
import sys

from aiohttp import web


def main() -> None:
    port, size = int(sys.argv[1]), int(sys.argv[2])

    async def converse(request: web.Request) -> web.Response:
        data = json.loads(await request.read())
        text = str(data["inputs"][0]["content"])
        body = json.dumps({"outputs": [{"result": text}]}, separators=(",", ":")).encode()
        return web.Response(body=body.ljust(size), content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/v1.0-alpha1/conversation/echo/converse", converse)
    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
