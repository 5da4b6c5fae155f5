"""The operator's API client trusts a kubeconfig's base64 ``certificate-authority-data``."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import kopf
from aiohttp import web

from parley_operator import certs
from parley_operator.kube import KubeClient


async def test_embedded_ca_data_verifies_the_api_server(tmp_path: Path) -> None:
    bundle = certs.generate(["localhost", "127.0.0.1"], ca_days=1, cert_days=1)
    (tmp_path / "tls.crt").write_bytes(bundle.cert_pem)
    (tmp_path / "tls.key").write_bytes(bundle.key_pem)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")

    async def version(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer t0ken"
        return web.json_response({"gitVersion": "v1.33.13"})

    app = web.Application()
    app.router.add_get("/version", version)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def login() -> kopf.ConnectionInfo:
        # exactly what a kubeconfig's `certificate-authority-data` holds: base64 of the PEM
        return kopf.ConnectionInfo(server=f"https://127.0.0.1:{port}", token="t0ken",
                                   ca_data=base64.b64encode(bundle.ca_pem))

    client = KubeClient(login)
    try:
        assert await client.get("/version") == {"gitVersion": "v1.33.13"}
    finally:
        await client.aclose()
        await runner.cleanup()
