"""Model names: a built-in alias is built into the cache, a local directory is used as is, anything else is a hub id.

``resolve_model`` is what every backend calls before ``from_pretrained``. A name that looks like a path but names
no directory fails here, with the near aliases; a hub id is passed through for ``from_pretrained`` to fetch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparta.errors import SpartaError
from sparta.provisioning.cache import cached
from sparta.provisioning.smollm2 import SMOLLM2_PACKAGE, SMOLLM2_RECIPE, build_smollm2
from sparta.provisioning.tiny import TINY_RECIPE, build_tiny
from sparta.registry import Registry, suggest


class ModelNotFoundError(SpartaError, FileNotFoundError):
    """A configured model that is neither an alias, nor a local directory, nor available from the hub."""


@dataclass(frozen=True)
class Alias:
    """How to build one named model into the cache; ``hub_id``: the model's canonical hub id, if it has one."""

    recipe: str
    build: Callable[[Path], list[str]]
    announce: str | None = None
    hub_id: str | None = None


ALIASES: Registry[Callable[[int], Alias]] = Registry("model alias")
"""family -> factory of an :class:`Alias` given the numeric suffix (``tiny-llama-3`` -> 3, no suffix -> 0)."""

ALIASES.register("tiny-llama")(lambda seed: Alias(f"{TINY_RECIPE}:seed={seed}", build_tiny(seed)))
ALIASES.register("smollm2-135m-instruct")(
    lambda _: Alias(
        SMOLLM2_RECIPE,
        build_smollm2,
        f"about 40 s and 520 MB, once; from {SMOLLM2_PACKAGE}",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    )
)

_SEEDED = {"tiny-llama"}
_SEED_SUFFIX = re.compile(r"^(?P<family>.+?)-(?P<seed>\d+)$")


def _parse_alias(name: str) -> tuple[str, int] | None:
    if name in ALIASES:
        return name, 0
    match = _SEED_SUFFIX.match(name)
    if match and match["family"] in _SEEDED:
        return match["family"], int(match["seed"])
    return None


def is_alias(name: str) -> bool:
    return _parse_alias(name) is not None


def looks_like_a_path(name: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything starting like a path or deeper than that is a path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).expanduser().exists()


def not_found_message(name: str) -> str:
    """Why ``name`` names no model, with the near aliases."""
    near = suggest(name, ALIASES.names())
    return (
        f"model {name!r} is not a local directory, nor an alias{near} ({', '.join(ALIASES.names())}, tiny-llama-<seed>)"
    )


def resolve_model(name: str) -> Path:
    """An alias is built into the cache (once) and its directory returned; a local directory is returned as is;
    anything else is taken for a hub id and passed through unchanged for ``from_pretrained`` to fetch."""
    parsed = _parse_alias(name)
    if parsed is not None:
        family, seed = parsed
        alias = ALIASES.get(family)(seed)
        cache_name = family if family not in _SEEDED else f"{family}-{seed}"
        return cached(cache_name, alias.recipe, alias.build, alias.announce)
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if looks_like_a_path(name):
        raise ModelNotFoundError(not_found_message(name))
    return Path(name)


def loadable_reference(name: str) -> str:
    """What a saved adapter's ``base_model_name_or_path`` says, so that PEFT or anyone else can load the base: an
    alias's canonical hub id (else the absolute path of its built directory), a local directory's absolute path,
    a hub id unchanged. Never an alias, which only sparta can resolve."""
    parsed = _parse_alias(name)
    if parsed is not None:
        hub_id = ALIASES.get(parsed[0])(parsed[1]).hub_id
        return hub_id or str(resolve_model(name).resolve())
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name
