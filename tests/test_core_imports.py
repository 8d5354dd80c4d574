"""The tournament core and the simulated path stay free of the deep-learning stack."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "trl")


def _imported_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print(','.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return [m for m in out.strip().split(",") if m in HEAVY]


def test_tournament_imports_no_torch():
    assert _imported_after("import sparta.tournament, sparta.tournament.bradley_terry") == []


def test_simulated_run_imports_no_torch():
    assert _imported_after("import sparta.experiments.simulation, sparta.pipeline.loop, sparta.cli") == []
