"""What can go wrong between sparta and a vLLM server, worded for the person running the run.

Every message names the member and the stage it concerns (where there is one) and the server's URL, so that a
failure in the middle of a round says what to fix; the round loop has written every finished chunk before, and
``sparta run`` with the same ``--out`` continues from there.
"""

from __future__ import annotations

from sparta.errors import SpartaError


class VllmError(SpartaError, RuntimeError):
    """A vLLM server could not be started, reached or used."""


class ServerStartError(VllmError):
    """A server that sparta starts exited or did not become healthy in time; the message quotes its log."""


class ServerUnreachableError(VllmError):
    """No answer from a server's URL (refused, timed out, name unknown)."""


class AdapterRefusedError(VllmError):
    """An adapter cannot be served: it trains the output head or embeddings, or the server refused to load it."""


class RequestFailedError(VllmError):
    """A server answered a completion request with an error, or with something that is not a completion."""
