"""Linters over what builds, publishes and starts the pod: the Dockerfile
(hadolint), the GitHub workflows (actionlint, which also runs shellcheck on
their `run:` scripts) and every shell script in the repository (shellcheck).

The tools come as wheels from requirements-dev.txt (`scripts/install.sh
--dev`), so a missing tool fails here instead of skipping: a lint test that
skips where the tool is absent checks nothing on a fresh machine.
A finding that is deliberate is disabled where it occurs, with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    """The linter installed beside this Python (its venv's bin/), else on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run scripts/install.sh --dev (requirements-dev.txt has it)")
    return found


def lint(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def shell_scripts() -> list[str]:
    """Tracked files that are shell scripts: *.sh, or a shell in the #! line."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    scripts = []
    for name in filter(None, tracked):
        path = ROOT / name
        if not path.is_file():
            continue
        with path.open("rb") as f:
            first_line = f.readline(200)
        if name.endswith(".sh") or (first_line.startswith(b"#!") and first_line.rstrip().endswith((b"sh", b"bash"))):
            scripts.append(name)
    return scripts


def test_the_shell_scripts_are_found():
    # Guards the discovery itself: an empty list would make the test below pass.
    assert {"runpod/start.sh", "scripts/install.sh", ".ci/run"} <= set(shell_scripts())


def test_shell_scripts_are_shellcheck_clean():
    result = lint(tool("shellcheck"), *shell_scripts())
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_hadolint_clean():
    result = lint(tool("hadolint"), "--no-color", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_are_actionlint_clean():
    workflows = sorted(str(p.relative_to(ROOT)) for p in (ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert workflows, "the image workflow is there"
    # shellcheck named outright: actionlint skips the run: scripts if it is not on PATH.
    result = lint(tool("actionlint"), "-no-color", "-shellcheck", tool("shellcheck"), "-pyflakes=", *workflows)
    assert result.returncode == 0, result.stdout + result.stderr
