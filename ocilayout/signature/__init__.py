"""Container image signatures: simple signing (GPG) and sigstore (cosign key pairs).

Submodules load ``cryptography`` / ``nacl`` only when a key or signature is actually used.
"""
