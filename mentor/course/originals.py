"""The kept originals: every course file as uploaded, one file per content
hash under ``MENTOR_HOME/files``. The index can always be rebuilt from them;
they cannot be rebuilt from anything.

A file is written beside its final name (``.<hash><suffix>.part``), flushed
to disk, then renamed: a reader, a restart or a rebuild only ever sees whole
originals. Beside them, in ``words/<hash>.json``, the words OCR read on a
document's scanned pages with their boxes, so that a viewer can highlight a
cited passage on the page's image; it is made again by a rebuild. Only the library deletes one, and only when the instructor
deleted its document or a complete new version replaced it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

DOC_ID = re.compile(r"[0-9a-f]{64}")
PARTIAL = re.compile(r"\.[0-9a-f]{64}\.\w+\.part")
WORDS = "words"


class Originals:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, doc_id: str) -> Path | None:
        """The kept original of a document, found by its hash alone."""
        if not DOC_ID.fullmatch(doc_id or ""):
            return None
        return next(self.folder.glob(f"{doc_id}.*"), None)

    def keep(self, source: Path, doc_id: str, suffix: str) -> Path:
        """Copies ``source`` in as the original of ``doc_id`` (once: a whole
        copy already there is kept as it is)."""
        with open(source, "rb") as f:
            return self._write(f, doc_id, suffix, check_hash=False)

    def keep_stream(self, stream: BinaryIO, doc_id: str, suffix: str) -> Path:
        """Writes ``stream`` in as the original of ``doc_id``, refusing bytes
        that do not hash to it (a damaged backup)."""
        return self._write(stream, doc_id, suffix, check_hash=True)

    def delete(self, doc_id: str) -> None:
        if found := self.path(doc_id):
            found.unlink(missing_ok=True)
        if DOC_ID.fullmatch(doc_id or ""):
            (self.folder / WORDS / f"{doc_id}.json").unlink(missing_ok=True)

    def keep_words(self, doc_id: str, pages: dict[int, tuple]) -> None:
        """Keeps the words OCR read on ``doc_id``'s pages (page index → lines
        of ``(word, x0, y0, x1, y1)``), replacing what was kept before."""
        if not DOC_ID.fullmatch(doc_id):
            raise ValueError(f"not a document id: {doc_id!r}")
        folder = self.folder / WORDS
        target = folder / f"{doc_id}.json"
        if not pages:
            target.unlink(missing_ok=True)
            return
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{doc_id}.json.part"
        partial.write_text(json.dumps({str(page): lines for page, lines in pages.items()}), encoding="utf-8")
        partial.replace(target)

    def words(self, doc_id: str, page: int) -> list | None:
        """The lines of words OCR read on page ``page`` of ``doc_id``, or None
        when that page was not read by OCR."""
        return self.all_words(doc_id).get(page)

    def all_words(self, doc_id: str) -> dict[int, list]:
        """The words OCR read on each of ``doc_id``'s scanned pages (1-based
        page → lines), as ``keep_words`` took them; {} when none was scanned."""
        if not DOC_ID.fullmatch(doc_id or ""):
            return {}
        try:
            kept = json.loads((self.folder / WORDS / f"{doc_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {int(page): lines for page, lines in kept.items()}

    def sweep_partials(self) -> int:
        """Deletes half-written copies (a crash mid-copy); never a whole original."""
        gone = 0
        for path in self._entries():
            if PARTIAL.fullmatch(path.name):
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def unowned(self, known: Iterable[str]) -> list[Path]:
        """Whole originals no registered document owns. Never deleted by us:
        the registry is written before the copy, so these come from outside
        (a hand-copied folder, say) and are only reported."""
        known = set(known)
        return [p for p in self._entries() if DOC_ID.fullmatch(p.stem) and p.stem not in known]

    def _entries(self) -> list[Path]:
        return list(self.folder.iterdir()) if self.folder.is_dir() else []

    def _write(self, stream: BinaryIO, doc_id: str, suffix: str, check_hash: bool) -> Path:
        if not DOC_ID.fullmatch(doc_id):
            raise ValueError(f"not a document id: {doc_id!r}")
        target = self.folder / f"{doc_id}{suffix}"
        if target.is_file():
            return target
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".{target.name}.part"
        digest = hashlib.sha256()
        try:
            with partial.open("wb") as out:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if check_hash and digest.hexdigest() != doc_id:
                raise ValueError(f"the bytes of {target.name} do not match its checksum")
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        _sync_folder(self.folder)
        return target


def _sync_folder(folder: Path) -> None:
    """Makes a rename in ``folder`` durable (a power cut, not only a crash)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
