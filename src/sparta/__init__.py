"""sparta-align: collective alignment of a pool of language models through combat (SPARTA)."""

__version__ = "0.1.0"
