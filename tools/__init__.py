"""Build-time scripts (run from a development checkout, never imported by the sidecar)."""
