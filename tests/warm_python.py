"""``python -m MODULE ARGS`` in a child forked from a warm interpreter.

A fresh interpreter spends about 8 s of CPU importing sentence-transformers
(torch, transformers, scikit-learn) before a command even starts, and the
suite runs dozens of such children: the CLI's commands, and the fault
matrix's child killed at each step. ``WarmPython`` starts one server,

    python -m tests.warm_python

which imports those modules once and then forks a child per request. The
child is the same program from there on: it runs the module as ``__main__``
with its own arguments, environment, working folder, stdin and output
files, and ends as ``python -m`` would (its exit code, a traceback for an
uncaught exception, death by a signal).

What it cannot give a child is another import-time environment: a module
the server imported read its environment variables then. Use it for runs
whose environment differs from the tests' only in the mentor's settings,
which ``Settings.from_env`` reads when the command starts.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# What the children import before their work: loaded once, in the server.
# Imports only: nothing here starts torch's or llama.cpp's thread pools,
# which a fork would not carry over.
PRELOAD = [
    "mentor.cli",
    "mentor.engine",
    "mentor.course.backup",
    "mentor.index.store.edge",
    "pypdf",
    "llama_cpp",
    "sentence_transformers",
    "transformers.models.bert.modeling_bert",
]


class WarmPython:
    """Runs ``python -m MODULE ARGS``, one at a time, each in a child forked
    from one server started in ``root`` (the repository)."""

    def __init__(self, root: Path):
        self._folder = Path(tempfile.mkdtemp(prefix="warm-python-"))
        self._log = self._folder / "server.log"
        with self._log.open("w") as log:
            self._server = subprocess.Popen(
                [sys.executable, "-m", "tests.warm_python"],
                cwd=root,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def run(
        self, module: str, *args: str, env: dict[str, str], cwd: Path | None = None, input: str = "", timeout: float = 300
    ) -> subprocess.CompletedProcess:
        """What ``subprocess.run([sys.executable, "-m", module, *args], env=env,
        cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout)``
        gives."""
        files = {name: self._folder / name for name in ("stdin", "stdout", "stderr")}
        files["stdin"].write_text(input)
        request = {"module": module, "args": args, "env": env, "cwd": str(cwd or os.getcwd()), "timeout": timeout}
        self._server.stdin.write(json.dumps(request | {k: str(v) for k, v in files.items()}) + "\n")
        self._server.stdin.flush()
        answer = self._server.stdout.readline().strip()
        assert answer, f"the warm Python server died:\n{self._log.read_text()[-3000:]}"
        out, err = files["stdout"].read_text(), files["stderr"].read_text()
        command = ["python", "-m", module, *args]
        if answer == "timeout":
            raise subprocess.TimeoutExpired(command, timeout, out, err)
        return subprocess.CompletedProcess(command, int(answer), out, err)

    def close(self) -> None:
        self._server.stdin.close()
        self._server.wait(timeout=60)
        self._server.stdout.close()
        for path in self._folder.iterdir():
            path.unlink()
        self._folder.rmdir()

    def __enter__(self) -> WarmPython:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serve() -> dict:
    """The server: imports ``PRELOAD``, then reads one request a line on
    stdin (JSON), forks a child for it and answers the child's exit code
    (negative: the signal that ended it) on stdout, or ``timeout`` once it
    has killed a child that outran its time. Returns, in each child, its
    request."""
    for name in PRELOAD:
        importlib.import_module(name)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            return request
        print(_exit_code(pid, request["timeout"]), flush=True)
    raise SystemExit(0)


def _exit_code(pid: int, timeout: float) -> int | str:
    deadline = time.monotonic() + timeout
    while (ended := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.02)
    return os.waitstatus_to_exitcode(ended[1])


def become(request: dict) -> None:
    """The forked child takes on its request's environment, folder, stdin
    and output files, then runs its module as ``python -m`` would."""
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    for fd, name, flags in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_WRONLY), (2, "stderr", os.O_WRONLY)):
        file = os.open(request[name], flags | (os.O_CREAT | os.O_TRUNC if fd else 0), 0o644)
        os.dup2(file, fd)
        os.close(file)
    sys.argv = [request["module"], *request["args"]]  # runpy sets argv[0] to the module's file
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    become(serve())
