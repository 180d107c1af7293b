"""A child process that runs one write of the course and dies at a named step.

    python -m tests.crash_child HOME OPERATION ARGUMENT SIGNAL STEP [WHEN] [NTH]

OPERATION is ``ingest`` (ARGUMENT: a file), ``delete`` (a document name),
``reindex`` or ``import`` (an archive). STEP names a function as
``module:Class.method`` (or ``module:function``); on its NTH call the child
sends itself SIGNAL (``KILL`` or ``INT``) ``before`` or ``after`` the call.
STEP ``read`` kills in the middle of reading the file being kept (after its
first block). Settings come from the environment (``tests.conftest.small_env``).

A failure mode is this test helper's subject, so it patches the library's
parts here, in the child only; the product has no hooks for it.
"""

from __future__ import annotations

import importlib
import io
import os
import signal
import sys
from pathlib import Path

# Small, so that a test file is copied in several blocks.
BLOCK = 1024


def die(signal_name: str) -> None:
    """SIGKILL ends the process at once; SIGINT raises KeyboardInterrupt in
    the main thread, as Ctrl-C does."""
    os.kill(os.getpid(), getattr(signal, f"SIG{signal_name}"))


def hook(step: str, when: str, nth: int, signal_name: str) -> None:
    """Wraps the function named by ``step`` so that its ``nth`` call dies."""
    module_name, path = step.split(":")
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original = getattr(owner, name)
    calls = 0

    def wrapped(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == nth and when == "before":
            die(signal_name)
        result = original(*args, **kwargs)
        if calls == nth and when == "after":
            die(signal_name)
        return result

    setattr(owner, name, wrapped)


def hook_read(signal_name: str) -> None:
    """Dies in the middle of copying a file into ``files/``: the copy is read
    in small blocks, and the second block never comes."""
    from mentor.course import originals

    class Reader(io.RawIOBase):
        def __init__(self, stream):
            self._stream, self._blocks = stream, 0

        def read(self, size=-1):
            self._blocks += 1
            if self._blocks == 2:
                die(signal_name)
            return self._stream.read(min(size, BLOCK))

    keep_stream = originals.Originals.keep_stream

    def keep(self, source, doc_id, suffix):
        with open(source, "rb") as f:
            return keep_stream(self, Reader(f), doc_id, suffix)

    originals.Originals.keep = keep
    originals.Originals.keep_stream = lambda self, stream, *a: keep_stream(self, Reader(stream), *a)


def run(operation: str, argument: str) -> None:
    from mentor import Mentor
    from mentor.course.backup import import_backup

    with Mentor.open(with_model=False) as mentor:
        if operation == "ingest":
            print(mentor.ingest([Path(argument)])[0].line(), flush=True)
        elif operation == "delete":
            print(mentor.remove(argument).name, flush=True)
        elif operation == "reindex":
            print(mentor.reindex().line(), flush=True)
        elif operation == "import":
            print(import_backup(mentor, Path(argument)).lines(), flush=True)
        else:
            raise SystemExit(f"unknown operation {operation}")


def main(argv: list[str]) -> None:
    home, operation, argument, signal_name, step, *rest = argv
    os.environ["MENTOR_HOME"] = home
    # A child of a background job starts with SIGINT ignored (POSIX shells
    # do that to asynchronous commands), and Python then leaves it so: the
    # Ctrl-C cases would run to the end instead of dying at their step.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if step == "read":
        hook_read(signal_name)
    elif step != "none":
        when, nth = (rest + ["after", "1"])[:2]
        hook(step, when, int(nth), signal_name)
    run(operation, argument)


if __name__ == "__main__":
    main(sys.argv[1:])
