"""The run directory (DESIGN section 3): its layout, defined once, and atomic reads and writes of its files.

Every layer reads or writes run directories (the round loop, the backends' adapters, evaluation, reports,
exports), so this module depends on nothing but the standard library.

Every file is written to a temporary sibling and renamed into place, so a killed run leaves either the old file
or the new one, never half of one. Files are created with the process umask like any other file (a run directory
is meant to be shared), without ever changing the umask.

    RUN/
      config.yaml  state.json
      round_001/   matches.jsonl responses.jsonl judgments.jsonl outcomes.jsonl pairs.jsonl ratings.json
                   training.json adapters/MEMBER/{adapter_config.json, adapter_model.safetensors}
                   (while a stage runs: its NAME.partial.jsonl of what is finished)
      tracking/    tracking.json (what each experiment tracker has logged) and the trackers' own files
      vllm/        server.log initial-adapters/MEMBER/   (pool.engine=vllm only)
      precision.json  the dtype pool.dtype=auto chose on this machine, why, and the measurements (auto only)
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sparta.errors import SpartaError

CONFIG_YAML = "config.yaml"
STATE_JSON = "state.json"
MATCHES = "matches.jsonl"
RESPONSES = "responses.jsonl"
JUDGMENTS = "judgments.jsonl"
OUTCOMES = "outcomes.jsonl"
PAIRS = "pairs.jsonl"
RATINGS = "ratings.json"
TRAINING = "training.json"
ADAPTERS = "adapters"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
SFT_EXAMPLES = "sft_examples.jsonl"
"""Beside an init-pool adapter: the (prompt, response) examples it was fine-tuned on, so evaluation can leave
them out wherever the adapter goes."""
TRACKING = "tracking"
TRACKING_JSON = "tracking.json"
ENGINE_DIR = "vllm"
"""What the vLLM engine keeps in a run directory: the started server's log and the members' initial adapters."""
SERVER_LOG = "server.log"
PRECISION_JSON = "precision.json"
INITIAL_ADAPTERS = "initial-adapters"


class RunDirectoryError(SpartaError, RuntimeError):
    """The run directory cannot be used as asked (another configuration, a damaged or missing file)."""


class RunFileMissingError(RunDirectoryError, FileNotFoundError):
    """A file the run directory should hold is not there."""


class RunFileDamagedError(RunDirectoryError, ValueError):
    """A run-directory file that cannot be read: not JSON, not UTF-8, or not of the expected shape."""


def round_dir(run_dir: Path, round_index: int) -> Path:
    """Rounds are numbered from 1 in directory names: round_001, round_002, ..."""
    return Path(run_dir) / f"round_{round_index:03d}"


def round_index_of(round_path: Path) -> int:
    """The inverse of :func:`round_dir`: ``.../round_003`` -> 3."""
    name = Path(round_path).name
    prefix, _, digits = name.rpartition("_")
    if prefix != "round" or not digits.isdigit():
        raise RunDirectoryError(f"{round_path} is not a round directory (round_NNN)")
    return int(digits)


def adapter_dir(round_path: Path, member: str) -> Path:
    """Where a member's adapter after a round's training lives: ``round_RRR/adapters/MEMBER``."""
    return Path(round_path) / ADAPTERS / member


def partial_path(path: Path) -> Path:
    """Where a stage keeps what it finished so far before ``path`` is complete: ``NAME.partial.jsonl``."""
    path = Path(path)
    return path.with_name(path.stem + ".partial.jsonl")


# --------------------------------------------------------------------------------------------- atomic writes


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary sibling, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for any new file
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFileMissingError(f"{path} does not exist") from None
    except UnicodeDecodeError as err:
        raise RunFileDamagedError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_json(path: Path) -> Any:
    """One JSON document; a missing or damaged file is an error naming the file."""
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise RunFileDamagedError(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from None


_LINE_ENCODER = json.JSONEncoder(ensure_ascii=False)
"""What ``json.dumps(row, ensure_ascii=False)`` builds on every call, built once (a simulated run writes 10^5 lines)."""


def jsonl_text(rows: Iterable[dict[str, Any]]) -> str:
    """Rows as JSON lines, each ending in a newline."""
    encode = _LINE_ENCODER.encode
    return "".join(encode(r) + "\n" for r in rows)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, jsonl_text(rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read one JSON object per line; a bad line is an error naming the file and line."""
    rows = []
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise RunFileDamagedError(f"{path}:{lineno}: not valid JSON: {err.msg}") from None
    return rows


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (weights files are large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
