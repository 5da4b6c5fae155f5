"""The component stream's operator end: resolution of Secrets, authentication, the hub, the server.

The protocol itself (path, message kinds, encoding) is ``parley_sidecar.loading.stream_protocol``,
shared with the sidecar that reads it.
"""
