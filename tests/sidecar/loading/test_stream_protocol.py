"""The component stream's protocol, shared by both ends: what the operator writes, the sidecar reads back."""

from __future__ import annotations

import pytest

from parley_sidecar.loading import stream_protocol as protocol

MESSAGES: list[protocol.Message] = [
    protocol.Snapshot(namespace="shop", app_id="web", keepalive=15.0,
                      components=({"name": "llm", "type": "conversation.echo", "metadata": []},),
                      withheld=(("other", "Secret 'openai' not found"),)),
    protocol.Upsert({"name": "llm", "type": "conversation.echo", "metadata": [{"name": "key", "value": "ü"}]}),
    protocol.Delete("llm"),
    protocol.Withheld("llm", "Secret 'openai' has no key 'api-key'"),
    protocol.Keepalive(),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_what_the_operator_encodes_the_sidecar_decodes(message: protocol.Message) -> None:
    line = protocol.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.decode(line) == message


def test_a_kind_from_a_newer_operator_is_recognised_as_unknown() -> None:
    assert protocol.decode(b'{"type":"resync","extra":1}\n') == protocol.Unknown("resync")


@pytest.mark.parametrize("line", [b"not json", b"[]", b"null", b'{"kind":"snapshot"}', b'{"type":"upsert"}',
                                  b'{"type":"delete","name":7}', b'{"type":"snapshot","components":{}}',
                                  b'{"type":"snapshot","keepalive":-1}', b"[" * 100_000])
def test_a_malformed_line_is_a_protocol_error_that_quotes_nothing(line: bytes) -> None:
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.decode(line.replace(b"}", b',"secret":"sk-live-1"}'))
    assert "sk-live" not in str(caught.value)


def test_refusals_carry_their_reason() -> None:
    import json

    assert protocol.decode_error(json.dumps(protocol.encode_error("unauthenticated: missing bearer token"))) == (
        "unauthenticated: missing bearer token")
    assert protocol.decode_error("<html>bad gateway</html>") == "<html>bad gateway</html>"
