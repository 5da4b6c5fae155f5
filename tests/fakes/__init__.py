"""Local fake LLM providers: aiohttp servers speaking each provider's real wire format.

Each fake records every request (method, path, query, headers, JSON body) so a test can assert the
exact request a component sent, answers from the provider's documented response shape, and can be
scripted to fail: an HTTP error with the provider's error body (400, 401, 429 with Retry-After,
500 …), a slow answer, a reset connection, or a body that is not JSON. A request for a stream is
answered in the provider's streaming wire format (SSE, or AWS event-stream for Bedrock), which can
be scripted too (``FakeServer.stream``): slow, cut, malformed, stalled, or replaying a recorded
exchange from ``tests/fakes/recorded/`` (``recordings``).
"""

from tests.fakes.anthropic import AnthropicFake
from tests.fakes.bedrock import BedrockFake
from tests.fakes.openai import OpenAIFake
from tests.fakes.server import FakeServer, Recorded, Reply

__all__ = ["AnthropicFake", "BedrockFake", "FakeServer", "OpenAIFake", "Recorded", "Reply"]
