"""Model resolution for the Hugging Face backend; the aliases, the cache and the builders live in
:mod:`sparta.provisioning`."""

from sparta.provisioning import (
    ALIASES,
    MANIFEST,
    ModelNotFoundError,
    cache_dir,
    is_alias,
    loadable_reference,
    resolve_model,
)

__all__ = ["ALIASES", "MANIFEST", "ModelNotFoundError", "cache_dir", "is_alias", "loadable_reference", "resolve_model"]
