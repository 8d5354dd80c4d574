"""The model cache: one directory per built model, a manifest of its files' sha256, a lock per entry.

A cache entry is valid when its manifest names the recipe that built it and every digest still holds; a missing
or corrupt entry is rebuilt. Builders work in a temporary sibling directory renamed into place while holding the
entry's file lock, so concurrent processes never see or produce half a model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from sparta.errors import SpartaError
from sparta.rundir import file_sha256

MANIFEST = "sparta-manifest.json"

Build = Callable[[Path], list[str]]
"""Writes a model into the directory given and returns the names of the files the manifest covers."""


class ProvisioningError(SpartaError, RuntimeError):
    """A model could not be provisioned (a failed download, a package without the expected file)."""


def cache_dir() -> Path:
    """Where built models live: ``$SPARTA_CACHE`` or ``~/.cache/sparta``."""
    return Path(os.environ.get("SPARTA_CACHE") or Path.home() / ".cache" / "sparta").expanduser()


def _say(message: str) -> None:
    """Tell the user about slow, one-off work (on stderr so it never mixes with command output)."""
    from rich.console import Console

    Console(stderr=True).print(f"[bold]sparta[/bold]: {message}")


def write_manifest(directory: Path, recipe: str, files: list[str]) -> None:
    manifest = {"recipe": recipe, "sha256": {name: file_sha256(directory / name) for name in files}}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def is_valid(directory: Path, recipe: str) -> bool:
    """Whether the entry's manifest matches the recipe and every checksum still holds."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        if manifest.get("recipe") != recipe or not manifest.get("sha256"):
            return False
        return all(file_sha256(directory / name) == digest for name, digest in manifest["sha256"].items())
    except (OSError, ValueError, AttributeError):
        return False


def _install(build: Build, target: Path, recipe: str) -> None:
    """Build into a temporary sibling, write the manifest, then swap it into place."""
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any other
    try:
        files = build(work)
        write_manifest(work, recipe, files)
        for path in work.iterdir():
            path.chmod(0o644)
        if target.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
            os.replace(target, stale / target.name)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cached(name: str, recipe: str, build: Build, announce: str | None) -> Path:
    """The valid cache entry ``name``, built (once, under its lock) when missing or corrupt."""
    target = cache_dir() / name
    if is_valid(target, recipe):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(cache_dir() / f".{name}.lock"):
        if not is_valid(target, recipe):
            if announce:
                what = "rebuilding a corrupt cache of" if target.exists() else "preparing"
                _say(f"{what} {name} in {target} ({announce})")
            _install(build, target, recipe)
    return target
