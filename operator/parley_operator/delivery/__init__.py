"""The component stream: wire format, resolution of Secrets, authentication, the hub, the server."""
