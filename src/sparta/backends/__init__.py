"""What produces text and scores and what trains: chosen by ``backend.kind`` in the configuration."""

from sparta.backends.base import TRIBES, Progress, Tribe, build_tribe

__all__ = ["TRIBES", "Progress", "Tribe", "build_tribe"]
