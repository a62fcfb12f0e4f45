"""The whole tree is ruff-clean (configuration in pyproject.toml)."""

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_check_whole_tree():
    ruff = shutil.which("ruff")
    assert ruff, "ruff is not installed; run tools/bootstrap.sh"
    result = subprocess.run([ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
