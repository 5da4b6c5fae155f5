"""The TLS context of parley's provider clients, made when a component first connects.

aiohttp builds two default SSL contexts when it is imported (``aiohttp.connector``), and each
parses the whole CA bundle file (``/etc/ssl/certs/ca-certificates.crt``: 144 certificates, ~2 MB
and 40-60 ms of CPU for the two), at every start, though parley never uses them: its sessions
pass :func:`client_context` to their connectors. :func:`import_aiohttp` imports aiohttp with
``SSL_CERT_FILE`` pointed at an empty file for the time of the import, so those two contexts see
only the hashed directory (which OpenSSL reads per look-up), then puts the environment back.
:func:`client_context` is made later with the environment as the pod set it, so a bundle mounted
over the default file (a common way to add a corporate CA) or named in ``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` is trusted exactly as before.
"""

from __future__ import annotations

import functools
import os
import ssl
import sys

__all__ = ["client_context", "import_aiohttp"]

_FILE = "SSL_CERT_FILE"


def import_aiohttp() -> None:
    """Import aiohttp without its import-time contexts parsing a bundle file (the default one or
    the pod's ``SSL_CERT_FILE``, which is put back before anything else runs). Nothing to do when
    aiohttp is imported already."""
    if "aiohttp" in sys.modules:
        return
    given = os.environ.get(_FILE)
    os.environ[_FILE] = os.devnull
    try:
        import aiohttp  # noqa: F401
    finally:
        if given is None:
            del os.environ[_FILE]
        else:
            os.environ[_FILE] = given


@functools.cache
def client_context() -> ssl.SSLContext:
    """What aiohttp's default verified context is, built from the environment at first use; one
    for the process (a context is safe to share, and each costs ~1 MB of parsed certificates)."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(("http/1.1",))
    return context
