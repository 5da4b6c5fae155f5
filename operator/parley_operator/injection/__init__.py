"""Sidecar injection as pure functions: annotations (keys) → config (SidecarConfig) → patch (JSON Patch)."""
