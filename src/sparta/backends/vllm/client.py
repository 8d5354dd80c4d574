"""JSON over HTTP to one or several vLLM servers: requests sharded over the URLs, many in flight, errors named.

Request i of a call goes to ``urls[i % len(urls)]``. Every request carries its own seed (derived from the
configuration and the request alone), so which server answers it never changes the result. Up to
``parallel_requests`` requests per server are in flight at once; the server batches them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from sparta.backends.vllm.errors import RequestFailedError, ServerUnreachableError


@dataclass(frozen=True)
class Call:
    """One request: the endpoint path, its JSON body, and who and what it is for (named in errors)."""

    path: str
    body: dict[str, Any]
    member: str
    stage: str


def _server_message(raw: bytes) -> str:
    """The error message of a vLLM/OpenAI error body, or the body itself."""
    text = raw.decode(errors="replace").strip()
    try:
        return str(json.loads(text)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return text[:500] or "(empty answer)"


def post(url: str, path: str, body: dict[str, Any], timeout: float, what: str) -> tuple[int, Any]:
    """POST ``body`` as JSON; (status, decoded JSON or text). HTTP errors come back as their status, unreachable
    servers raise :class:`ServerUnreachableError`."""
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read()
            status = answer.status
    except urllib.error.HTTPError as err:
        return err.code, _server_message(err.read())
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ServerUnreachableError(f"{what}: cannot reach the vLLM server at {url} ({reason})") from None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def get_json(url: str, path: str, timeout: float) -> Any:
    """GET ``url + path`` as JSON (``/v1/models``)."""
    try:
        with urllib.request.urlopen(url + path, timeout=timeout) as answer:
            return json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ServerUnreachableError(f"cannot read {url}{path} ({getattr(err, 'reason', err)})") from None


class VllmClient:
    """Runs batches of calls against the servers and returns the decoded answers in call order."""

    def __init__(self, urls: Sequence[str], timeout: float, parallel_requests: int) -> None:
        if not urls:
            raise ValueError("VllmClient needs at least one server URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = timeout
        self.parallel_requests = parallel_requests

    def _one(self, url: str, call: Call) -> dict[str, Any]:
        what = f"member {call.member!r}, {call.stage}"
        status, answer = post(url, call.path, call.body, self.timeout, what)
        if status != 200 or not isinstance(answer, dict) or not answer.get("choices"):
            detail = answer if isinstance(answer, str) else json.dumps(answer)[:500]
            raise RequestFailedError(
                f"{what}: the vLLM server at {url}{call.path} answered {status}: {detail} "
                f"(model {call.body.get('model')!r}); finished chunks are kept, run again to continue"
            )
        return answer

    def run(self, calls: Sequence[Call], done: Callable[[int], None] = lambda _: None) -> list[dict[str, Any]]:
        """Every call's JSON answer, in order; ``done(index)`` as each call finishes. The first failure cancels the
        calls not yet sent and is raised."""
        if not calls:
            return []
        results: list[dict[str, Any] | None] = [None] * len(calls)
        workers = min(len(calls), self.parallel_requests * len(self.urls))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vllm-request") as pool:
            pending: dict[Future, int] = {
                pool.submit(self._one, self.urls[index % len(self.urls)], call): index
                for index, call in enumerate(calls)
            }
            while pending:
                finished, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    index = pending.pop(future)
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise future.exception()  # type: ignore[misc]
                    results[index] = future.result()
                    done(index)
        return [r for r in results if r is not None]
