"""A model that streams: OpenAI chat completions as SSE, paced like a real one.

    python -m bench.stream_upstream PORT [--think-ms 100] [--chunks 20] [--gap-ms 25]

Answers every ``POST …/chat/completions`` with ``stream: true`` by waiting ``--think-ms`` (the
model's time to first token), then ``--chunks`` content chunks ``--gap-ms`` apart, a finish chunk,
a usage chunk when ``stream_options.include_usage`` asks, and ``data: [DONE]``: OpenAI's streaming
wire format (tests/fakes/recorded/openai_stream*.txt). ``/healthz`` answers 204. Nothing else: the
baseline every streaming figure is measured against, run in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.stream_upstream")
    parser.add_argument("port", type=int)
    parser.add_argument("--think-ms", type=float, default=100.0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=25.0)
    args = parser.parse_args()
    role = _chunk({"role": "assistant", "content": ""})
    words = [_chunk({"content": f" word{i}"}) for i in range(args.chunks)]
    finish = _chunk({}, "stop")
    usage = ("data: " + json.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1,
                                    "model": "gpt-4o-mini", "choices": [],
                                    "usage": {"prompt_tokens": 8, "completion_tokens": args.chunks,
                                              "total_tokens": 8 + args.chunks}},
                                   separators=(",", ":")) + "\n\n").encode()

    async def completions(request: web.Request) -> web.StreamResponse:
        data = await request.json()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await asyncio.sleep(args.think_ms / 1000)
        await response.write(role)
        for index, word in enumerate(words):
            if index:
                await asyncio.sleep(args.gap_ms / 1000)
            await response.write(word)
        await response.write(finish)
        if (data.get("stream_options") or {}).get("include_usage"):
            await response.write(usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/chat/completions", completions)
    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()
