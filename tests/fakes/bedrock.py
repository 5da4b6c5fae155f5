"""Amazon Bedrock Converse (``POST /model/{modelId}/converse``), as in the Bedrock API reference.

Every request's SigV4 signature is verified the way AWS does, from the request as received (the
raw path, the ``host`` header with its port, the body's SHA-256), with this file's own small
implementation; a bad signature gets Bedrock's 403 ``InvalidSignatureException``, an unknown key
``UnrecognizedClientException``. Errors carry ``x-amzn-ErrorType`` and ``{"message": …}``.

``POST /model/{modelId}/converse-stream`` (ConverseStream) answers the same reply as AWS
event-stream messages with real CRCs (``tests.fakes.eventstream``), as the ConverseStream
reference shows the events (tests/fakes/recorded/bedrock_stream*.json): ``messageStart``, text as
``contentBlockDelta`` a word at a time (Bedrock sends no ``contentBlockStart`` for text), each tool
use as ``contentBlockStart`` / ``toolUse.input`` fragments / ``contentBlockStop``,
``messageStop``, then ``metadata`` with the usage. Every payload carries Bedrock's ``p`` padding
field (it pads events so their sizes do not reveal the text).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from tests.fakes import eventstream
from tests.fakes.openai import fragments, words
from tests.fakes.server import FakeServer, Recorded, Reply

__all__ = ["BedrockFake"]

_ERRORS = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
           408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
           500: "InternalServerException", 503: "ServiceUnavailableException"}
_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")


def _h(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class BedrockFake(FakeServer):
    def __init__(self, credentials: dict[str, str] | None = None, region: str = "us-east-1") -> None:
        super().__init__()
        self.credentials = credentials or {"AKIDFAKE": "fake/secret+key"}
        self.region = region
        self.session_tokens: dict[str, str] = {}
        """access key → the session token it must come with."""

    def model_of(self, recorded: Recorded) -> str:
        match = re.fullmatch(r"/model/([^/]+)/converse(?:-stream)?", recorded.path)
        return unquote(match.group(1)) if match else ""

    def _denied(self, kind: str, message: str) -> web.Response:
        return web.json_response({"message": message}, status=403, headers={"x-amzn-ErrorType": f"{kind}:http://fake/"})

    def check(self, recorded: Recorded) -> web.Response | None:
        if recorded.method != "POST" or not self.model_of(recorded):
            return web.json_response({"message": "Unknown operation"}, status=404,
                                     headers={"x-amzn-ErrorType": "UnknownOperationException:"})
        match = _AUTH.match(recorded.headers.get("authorization", ""))
        if match is None:
            return self._denied("MissingAuthenticationTokenException", "Missing Authentication Token")
        access, date, region, service, signed_names, signature = match.groups()
        secret = self.credentials.get(access)
        if secret is None:
            return self._denied("UnrecognizedClientException", "The security token included in the request is invalid.")
        if self.session_tokens.get(access, "") != recorded.headers.get("x-amz-security-token", ""):
            return self._denied("UnrecognizedClientException", "The security token included in the request is invalid.")
        names = signed_names.split(";")
        if "host" not in names or region != self.region or service != "bedrock":
            return self._denied("InvalidSignatureException", "Credential should be scoped correctly.")
        canonical = "\n".join([
            recorded.method,
            quote(recorded.path, safe="/-_.~"),
            "",
            "".join(f"{n}:{' '.join(recorded.headers.get(n, '').split())}\n" for n in names),
            signed_names,
            hashlib.sha256(recorded.raw).hexdigest(),
        ])
        amz_date = recorded.headers.get("x-amz-date", "")
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, f"{date}/{region}/{service}/aws4_request",
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = _h(_h(_h(_h(("AWS4" + secret).encode(), date), region), service), "aws4_request")
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return self._denied("InvalidSignatureException",
                                "The request signature we calculated does not match the signature you provided.")
        return None

    def default_text(self, recorded: Recorded) -> str:
        turns = [m for m in recorded.body.get("messages", []) if m.get("role") == "user"]
        texts = [b["text"] for b in (turns[-1]["content"] if turns else []) if "text" in b]
        return "echo: " + " ".join(texts)

    def answer(self, recorded: Recorded, reply: Reply) -> Any:
        content: list[dict[str, Any]] = []
        forced = ((recorded.body or {}).get("toolConfig") or {}).get("toolChoice") or {}
        if reply.structured is not None and "tool" in forced:
            content.append({"toolUse": {"toolUseId": "tooluse_structured", "name": forced["tool"]["name"],
                                        "input": reply.structured}})
        else:
            if reply.text:
                content.append({"text": reply.text})
            content.extend({"toolUse": {"toolUseId": id_, "name": name, "input": args}}
                           for id_, name, args in reply.tool_calls)
        usage: dict[str, Any] = {"inputTokens": reply.prompt_tokens - reply.cached_tokens,
                                 "outputTokens": reply.completion_tokens,
                                 "totalTokens": reply.prompt_tokens + reply.completion_tokens}
        if reply.cached_tokens:
            usage["cacheReadInputTokens"] = reply.cached_tokens
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": "tool_use" if reply.structured is not None else _STOP.get(reply.finish, reply.finish),
            "usage": usage,
            "metrics": {"latencyMs": 7},
        }

    stream_content_type = "application/vnd.amazon.eventstream"

    def wants_stream(self, recorded: Recorded) -> bool:
        return recorded.path.endswith("/converse-stream")

    def stream_frames(self, recorded: Recorded, reply: Reply) -> list[bytes]:
        whole = self.answer(recorded, reply)
        padding = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"

        def event(kind: str, payload: dict[str, Any]) -> bytes:
            body = {**payload, "p": padding[:len(padding) - len(json.dumps(payload)) % 20]}
            return eventstream.event(kind, json.dumps(body, separators=(",", ":")).encode())

        frames = [event("messageStart", {"role": "assistant"})]
        for index, block in enumerate(whole["output"]["message"]["content"]):
            if "text" in block:
                frames.extend(event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": word}})
                              for word in words(block["text"]))
            else:
                use = block["toolUse"]
                frames.append(event("contentBlockStart", {"contentBlockIndex": index, "start": {
                    "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}}))
                frames.extend(event("contentBlockDelta", {"contentBlockIndex": index,
                                                          "delta": {"toolUse": {"input": piece}}})
                              for piece in (fragments(json.dumps(use["input"])) if use["input"] else []))
            frames.append(event("contentBlockStop", {"contentBlockIndex": index}))
        frames.append(event("messageStop", {"stopReason": whole["stopReason"]}))
        frames.append(event("metadata", {"usage": whole["usage"], "metrics": whole["metrics"]}))
        return frames

    def malformed_frame(self) -> bytes:
        return eventstream.event("contentBlockDelta", b'{"contentBlockIndex":0,"delta":')

    def error_body(self, status: int, message: str) -> Any:
        return {"message": message}

    def error_headers(self, status: int) -> dict[str, str]:
        return {"x-amzn-ErrorType": f"{_ERRORS.get(status, 'InternalServerException')}:http://fake/"}
