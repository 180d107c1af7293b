"""What the generated Office files share: a package whose bytes depend only
on what it holds."""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path


def fix_zip_dates(path: Path, when: datetime) -> None:
    """Rewrites an Office package (a zip) with every entry dated ``when``,
    so that two builds give the same bytes."""
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info)) for info in src.infolist()]
    tmp = path.with_suffix(".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)
    tmp.replace(path)
