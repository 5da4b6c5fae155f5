"""Byte-identical answers before and after a change to the hot path: record once, compare after.

    python -m bench.answers_check record /tmp/answers.json [--count 600] [--seed 18]
    python -m bench.answers_check compare /tmp/answers.json

Starts a sidecar with the echo component (``bench.vs_daprd.components``), sends a fixed-seed series
of random alpha1/alpha2 requests over HTTP (valid bodies, bodies with a field of the wrong type,
unknown fields, duplicate keys, broken JSON, odd paths and methods, ``metadata.*`` queries, PII to
scrub) and over gRPC (random messages), and keeps what a client sees: HTTP status, Content-Type
and body bytes; gRPC status code, details and the serialized answer. ``compare`` replays the same
series and prints every answer that differs (exit 1 if any). Not a test: a tool for A/B work on
the request path, whose output is only meaningful against a recording of the same revision's
behaviour (the conformance tiers pin behaviour against daprd).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2_grpc

from bench import harness, vs_daprd

WORDS = ("hello", "Dapr", "zürich", "日本語", "a\"quote", "back\\slash", "tab\there", "emoji 🎉", "",
         "call me at 555-123-4567", "mail bob@example.com", "ip 10.0.0.1", "card 4111 1111 1111 1111",
         "\u2028line", "null", "{}", "</script>")
ROLES = ("user", "human", "system", "assistant", "ai", "tool", "function", "generic", "", "other")


def text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6)))


def parameters(rng: random.Random) -> dict[str, Any]:
    kinds = [
        {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": text(rng)},
        {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": str(rng.randint(-9, 9**12))},
        {"@type": "type.googleapis.com/google.protobuf.DoubleValue", "value": rng.random()},
        {"@type": "type.googleapis.com/google.protobuf.BoolValue", "value": rng.random() < 0.5},
    ]
    return {f"p{i}": rng.choice(kinds) for i in range(rng.randint(1, 3))}


def alpha1(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": [
        {"content": text(rng), **({"role": rng.choice(ROLES)} if rng.random() < 0.6 else {}),
         **({"scrubPII": True} if rng.random() < 0.2 else {})} for _ in range(rng.randint(0, 3))]}
    if rng.random() < 0.2:
        body["inputs"] = [text(rng) for _ in range(rng.randint(1, 2))]  # the Dapr-docs plain strings
    if rng.random() < 0.3:
        body["parameters"] = parameters(rng)
    if rng.random() < 0.3:
        body["temperature"] = rng.choice([0, 0.5, 1, 2.5, -1])
    if rng.random() < 0.3:
        body[rng.choice(["contextID", "contextId", "conversationContext"])] = text(rng)
    if rng.random() < 0.2:
        body["scrubPII"] = True
    if rng.random() < 0.2:
        body["metadata"] = {"k": text(rng)}
    return body


def alpha2_message(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["ofUser", "ofSystem", "ofDeveloper", "ofAssistant", "ofTool"])
    msg: dict[str, Any] = {"content": [{"text": text(rng)} for _ in range(rng.randint(0, 2))]}
    if rng.random() < 0.3:
        msg["name"] = text(rng)
    if kind == "ofAssistant" and rng.random() < 0.4:
        msg["toolCalls"] = [{"id": "c1", "function": {"name": "f", "arguments": "{\"a\":1}"}}]
    if kind == "ofTool":
        msg["toolId"] = rng.choice(["c1", ""])
    return {kind: msg}


def alpha2(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": [
        {"messages": [alpha2_message(rng) for _ in range(rng.randint(0, 3))],
         **({"scrubPii": True} if rng.random() < 0.2 else {})} for _ in range(rng.randint(0, 2))]}
    if rng.random() < 0.3:
        body["parameters"] = parameters(rng)
    if rng.random() < 0.3:
        body["temperature"] = rng.choice([0, 0.7, 3])
    if rng.random() < 0.3:
        body["tools"] = [{"function": {"name": rng.choice(["f", "get_weather", ""]), "description": text(rng),
                                       "parameters": {"type": "object"}}}]
    if rng.random() < 0.2:
        body["toolChoice"] = rng.choice(["auto", "none", "required", "f", "missing"])
    if rng.random() < 0.2:
        body["contextId"] = text(rng)
    if rng.random() < 0.2:
        body["scrubPii"] = rng.random() < 0.5
    if rng.random() < 0.2:
        body["metadata"] = {"k": text(rng)}
    if rng.random() < 0.1:
        body["responseFormat"] = {"type": "object"}
    if rng.random() < 0.1:
        body["promptCacheRetention"] = rng.choice(["60s", "1m", "bad"])
    return body


def mutate(rng: random.Random, raw: str) -> str:
    """Most bodies pass as they are; the rest are broken in one of the ways clients break them."""
    roll = rng.random()
    if roll < 0.6 or not raw:
        return raw
    if roll < 0.68:
        return raw[: rng.randint(0, len(raw) - 1)]
    if roll < 0.76:
        return raw[:-1] + ',"unknownField":{"x":[1,2]}}' if raw.endswith("}") else raw
    if roll < 0.82:
        return raw.replace('"inputs"', '"inputs":7,"inputs"', 1)
    if roll < 0.9:
        return raw.replace('"inputs":', '"inputs":"not a list","x":', 1)
    return rng.choice(["", "null", "[]", "{", "{\"inputs\": [{\"content\": 5}]}", "{\"temperature\": \"hot\"}"])


def http_cases(rng: random.Random, count: int) -> list[tuple[str, str, str]]:
    cases = []
    for _ in range(count):
        version = rng.choice(["alpha1", "alpha2"])
        raw = mutate(rng, json.dumps(alpha1(rng) if version == "alpha1" else alpha2(rng),
                                     ensure_ascii=rng.random() < 0.5))
        name = rng.choice(["echo"] * 8 + ["nope", "ECHO", "echo%20"])
        path = f"/v1.0-{version}/conversation/{name}/converse"
        roll = rng.random()
        if roll < 0.05:
            path = path.replace("/conversation/", "//conversation/")
        elif roll < 0.08:
            path = path.replace("/conversation/", "/conversation/x/../")
        elif roll < 0.1:
            path += "/"
        elif roll < 0.15:
            path += "?metadata.model=m1&metadata.x=" + rng.choice(["1", "%20", "a%2Fb"])
        method = "GET" if rng.random() < 0.03 else "POST"
        cases.append((method, path, raw))
    return cases


def http_answers(base: str, cases: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    out = []
    for method, path, raw in cases:
        request = urllib.request.Request(base + path, data=raw.encode() if method == "POST" else None, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                status, ctype, body = resp.status, resp.headers.get("Content-Type"), resp.read()
        except urllib.error.HTTPError as exc:
            status, ctype, body = exc.code, exc.headers.get("Content-Type"), exc.read()
        out.append({"case": [method, path, raw], "status": status, "type": ctype,
                    "body": base64.b64encode(body).decode()})
    return out


def grpc_cases(rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    from google.protobuf import json_format, wrappers_pb2  # noqa: F401  (registers the Any types used)

    cases = []
    for _ in range(count):
        name = rng.choice(["echo"] * 8 + ["nope", ""])
        if rng.random() < 0.5:
            a1 = alpha1(rng)
            if a1["inputs"] and isinstance(a1["inputs"][0], str):
                a1["inputs"] = [{"content": s} for s in a1["inputs"]]
            a1.pop("conversationContext", None)
            msg: Any = json_format.ParseDict({**a1, "name": name}, ai_pb2.ConversationRequest(),
                                             ignore_unknown_fields=True)
            cases.append(("ConverseAlpha1", msg.SerializeToString(deterministic=True)))
        else:
            a2 = alpha2(rng)
            a2.pop("promptCacheRetention", None)
            a2.pop("responseFormat", None)
            msg = json_format.ParseDict({**a2, "name": name}, ai_pb2.ConversationRequestAlpha2(),
                                        ignore_unknown_fields=True)
            cases.append(("ConverseAlpha2", msg.SerializeToString(deterministic=True)))
    return cases


async def grpc_answers(target: str, cases: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
        for method, raw in cases:
            message: Any = (ai_pb2.ConversationRequest if method == "ConverseAlpha1"
                            else ai_pb2.ConversationRequestAlpha2).FromString(raw)
            try:
                answer = await getattr(stub, method)(message, timeout=10)
                out.append({"case": [method, base64.b64encode(raw).decode()], "code": "OK",
                            "answer": base64.b64encode(answer.SerializeToString(deterministic=True)).decode()})
            except grpc.aio.AioRpcError as exc:
                out.append({"case": [method, base64.b64encode(raw).decode()], "code": exc.code().name,
                            "details": exc.details()})
    return out


def collect(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    h_cases, g_cases = http_cases(rng, count), grpc_cases(rng, count // 3)
    with tempfile.TemporaryDirectory() as tmp:
        resources = vs_daprd.components(Path(tmp), harness.free_port())
        http, grpc_port = harness.free_port(), harness.free_port()
        argv = harness.sidecar_argv(http, grpc_port, harness.free_port(), harness.free_port(), resources)
        url = f"http://127.0.0.1:{http}"
        # A fixed hash seed: protobuf map fields (``parameters``) come out in hash order.
        with harness.serve(argv, f"{url}/v1.0/healthz", url, env={"PYTHONHASHSEED": "0"}):
            return http_answers(url, h_cases) + asyncio.run(grpc_answers(f"127.0.0.1:{grpc_port}", g_cases))


def same_but_map_order(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """The same answer but for the order of a map's keys, which protobuf leaves unspecified (upb
    iterates a map in an order that changes from one process to the next, and so does Go)."""
    if old.keys() != new.keys() or "body" not in old or old["status"] != new["status"] or old["type"] != new["type"]:
        return False
    a, b = base64.b64decode(old["body"]), base64.b64decode(new["body"])
    try:
        return len(a) == len(b) and sorted(a) == sorted(b) and json.loads(a) == json.loads(b)
    except ValueError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.answers_check")
    parser.add_argument("mode", choices=["record", "compare"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    if args.mode == "record":
        answers = collect(args.count, args.seed)
        args.file.write_text(json.dumps({"count": args.count, "seed": args.seed, "answers": answers}))
        codes: dict[str, int] = {}
        for a in answers:
            key = str(a.get("status", a.get("code")))
            codes[key] = codes.get(key, 0) + 1
        print(f"recorded {len(answers)} answers in {args.file}: {dict(sorted(codes.items()))}")
        return
    recorded = json.loads(args.file.read_text())
    answers = collect(recorded["count"], recorded["seed"])
    pairs = list(zip(recorded["answers"], answers, strict=True))
    differ = [(old, new) for old, new in pairs if old != new and not same_but_map_order(old, new)]
    reordered = sum(1 for old, new in pairs if old != new) - len(differ)
    for old, new in differ[:20]:
        print(f"DIFFERS {old['case']}\n  before {old}\n  after  {new}")
    print(f"{len(answers) - len(differ) - reordered} of {len(answers)} answers byte-identical, {reordered} the same "
          f"but for the order of a protobuf map's keys, {len(differ)} different")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
