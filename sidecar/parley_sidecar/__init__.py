"""parley sidecar: Dapr's conversation API (HTTP and gRPC), daprd-compatible.

The names other code needs are re-exported here; everything else is internal and may move.
"""

from parley_sidecar.components.base import (
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
from parley_sidecar.components.spec import ComponentSpec
from parley_sidecar.errors import ParleyError, ProviderError
from parley_sidecar.settings import RUNTIME_VERSION, SidecarSettings

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
