"""Signing commands (generate-sigstore-key, standalone-sign/verify, sign, verify)."""
