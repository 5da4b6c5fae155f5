"""One gRPC unary call written frame by frame with h2: metadata no gRPC library sends.

grpcio's C core keeps ``grpc-trace-bin`` to itself on the client (it neither sends a value given
to it nor shows one answered), and grpclib refuses ``grpc-`` keys; daprd's tracing reads and
answers that key, so the tests that compare parley with daprd on it speak HTTP/2 themselves.
"""

from __future__ import annotations

import base64
import socket
import struct

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset, TrailersReceived

__all__ = ["Answer", "bin_value", "unary"]

Answer = tuple[dict[str, str], bytes, dict[str, str]]
"""(response headers, the answer's message, trailers)."""


def bin_value(value: bytes) -> str:
    """A ``-bin`` metadata value as it travels: base64, unpadded."""
    return base64.b64encode(value).decode("ascii").rstrip("=")


def unary(port: int, method: str, message: bytes, metadata: list[tuple[str, str]], *,
          timeout: float = 30.0) -> Answer:
    """Call ``method`` (``/package.Service/Method``) on 127.0.0.1:``port`` with ``message`` (a
    serialized request) and ``metadata`` sent as they are."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        h2 = H2Connection(config=H2Configuration(client_side=True, header_encoding="utf-8"))
        h2.initiate_connection()
        stream = h2.get_next_available_stream_id()
        h2.send_headers(stream, [(":method", "POST"), (":scheme", "http"), (":path", method),
                                 (":authority", f"127.0.0.1:{port}"), ("content-type", "application/grpc"),
                                 ("te", "trailers"), *metadata])
        h2.send_data(stream, struct.pack(">BI", 0, len(message)) + message, end_stream=True)
        sock.sendall(h2.data_to_send())
        headers: dict[str, str] = {}
        trailers: dict[str, str] = {}
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection before the call ended")
            for event in h2.receive_data(chunk):
                if isinstance(event, ResponseReceived):
                    headers = dict(event.headers)  # type: ignore[arg-type]
                elif isinstance(event, TrailersReceived):
                    trailers = dict(event.headers)  # type: ignore[arg-type]
                elif isinstance(event, DataReceived):
                    data += event.data
                    h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, StreamReset):
                    raise ConnectionError(f"the server reset the call: {event.error_code!r}")
                elif isinstance(event, StreamEnded) and event.stream_id == stream:
                    return headers, data[5:], trailers
            sock.sendall(h2.data_to_send())
