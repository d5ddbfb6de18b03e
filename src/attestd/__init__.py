"""attestd: an open, self-hostable remote attestation service."""

__version__ = "0.1.0"
