"""The run directory's file I/O leaves the process umask alone and honours it when creating files."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

PROBE = textwrap.dedent(
    """
    import json, os, stat, sys
    from pathlib import Path

    calls = []
    real_umask = os.umask

    def counting_umask(mask):
        calls.append(mask)
        return real_umask(mask)

    os.umask = counting_umask
    real_umask(0o022)
    import sparta.rundir as rundir

    modes = {}
    for mask in (0o027, 0o002):
        real_umask(mask)  # changed after the import: files must follow the umask of the moment
        path = Path(sys.argv[1]) / f"x-{mask:o}.json"
        rundir.write_json(path, {"a": 1})
        modes[f"{mask:o}"] = stat.S_IMODE(os.stat(path).st_mode)
    print(json.dumps({"umask_calls": len(calls), "modes": modes}))
    """
)


def test_importing_and_writing_never_touch_the_umask_and_files_follow_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)], env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["umask_calls"] == 0
    assert result["modes"] == {"27": 0o640, "2": 0o664}
