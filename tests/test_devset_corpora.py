"""The generated dev-set corpora (bench/devset/make_slides.py and
make_handouts.py): deterministic, and the committed dev sets still match
them. No Debian corpora needed: the scans and the manuals are checked by
``python bench/devset/check.py`` where their packages are installed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

DEVSET = Path(__file__).resolve().parent.parent / "bench" / "devset"


def _script(name: str):
    """bench/devset/<name>.py as a module, its sibling modules importable as
    when it runs as a script."""
    if str(DEVSET) not in sys.path:
        sys.path.insert(0, str(DEVSET))
    spec = importlib.util.spec_from_file_location(f"devset_{name}", DEVSET / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # check.py's dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def _checker():
    if str(DEVSET.parent) not in sys.path:
        sys.path.insert(0, str(DEVSET.parent))
    return _script("check")


def test_slides_are_deterministic_and_match_the_dev_set(tmp_path):
    make_slides = _script("make_slides")
    first = make_slides.build(tmp_path / "a")
    second = make_slides.build(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()

    counts, failures = _checker().check_corpus("slides", [first], set())
    assert failures == []
    assert counts["answerable"] >= 30 and counts["unanswerable"] >= 10


def test_handouts_are_deterministic_and_their_questions_match(tmp_path):
    make_handouts = _script("make_handouts")
    first = make_handouts.build(tmp_path / "a")
    second = make_handouts.build(tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))

    # The handout questions of the mixed set, checked against the handouts
    # alone (the manual is Debian's bash-doc, not needed here).
    check = _checker()
    records = [r for _, r in check.load_records([DEVSET / "mixed.jsonl"])]
    handouts = {p.name for p in first}
    on_handouts = [r for r in records if r.get("file") in handouts]
    assert len(on_handouts) * 3 >= sum(1 for r in records if not r.get("unanswerable"))
    only = tmp_path / "handouts.jsonl"
    only.write_text("".join(json.dumps(r) + "\n" for r in on_handouts), encoding="utf-8")
    counts, failures = check.check_corpus("mixed", first, set(), devsets=[only])
    assert failures == []
    assert counts["answerable"] == len(on_handouts)
