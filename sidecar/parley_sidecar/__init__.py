"""parley sidecar: Dapr's conversation API (HTTP and gRPC), daprd-compatible.

The names other code needs are re-exported here; everything else is internal and may move.
"""

from parley_sidecar import tls

tls.import_aiohttp()  # before any module of parley imports aiohttp (see tls)

from parley_sidecar.components.base import (  # noqa: E402
    Choice,
    ComponentContext,
    Conversation,
    ConverseRequest,
    ConverseResponse,
    Message,
    Output,
    Role,
    TextPart,
    Tool,
    ToolCall,
    ToolResult,
    Usage,
)
from parley_sidecar.components.spec import ComponentSpec  # noqa: E402
from parley_sidecar.errors import ParleyError, ProviderError  # noqa: E402
from parley_sidecar.settings import RUNTIME_VERSION, SidecarSettings  # noqa: E402

__all__ = [
    "RUNTIME_VERSION",
    "Choice",
    "ComponentContext",
    "ComponentSpec",
    "Conversation",
    "ConverseRequest",
    "ConverseResponse",
    "Message",
    "Output",
    "ParleyError",
    "ProviderError",
    "Role",
    "SidecarSettings",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolResult",
    "Usage",
]
