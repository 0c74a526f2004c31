"""Tamper-evident audit log: append-only security events, an RFC 6962 Merkle tree over them, and
Ed25519-signed checkpoints (tree size + root + time) that can be exported and verified later.

``log`` holds the tables and :class:`~kinema.audit.log.AuditLog`; ``merkle`` the hashing;
``checkpoint`` the signed checkpoints and the signing key file.
"""
