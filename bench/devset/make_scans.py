"""The "scanned" dev-set corpus: 24 real pages of the gnuplot manual, turned
into a PDF of page images without a text layer, as a scanner makes it.

    python bench/devset/make_scans.py OUT_DIR [--source PDF]   # writes OUT_DIR/gnuplot-scanned.pdf

The source is the manual Debian ships in ``gnuplot-doc``
(/usr/share/doc/gnuplot/gnuplot.pdf, gnuplot 5.4, 311 pages); its physical
pages 31-54 (the chapter from "Batch/Interactive Operation" to "Linetypes,
colors, and styles") become pages 1-24 of the scan. Each page is rendered by
PDFium in grey at 200 dpi, turned by a small angle (alternately -0.4 and +0.3
degrees, as a page lies on a scanner's glass) and stored as a JPEG image
filling the page. The mentor reads such pages by OCR (``mentor/ocr.py``),
so the dev set's evidence (``scanned.jsonl``) is what Tesseract reads, not
the source's text layer.

Deterministic: the same source, script and libraries give the same bytes
(fixed PDF dates, no random noise). Another Pillow version writes other bytes
but the same images: Tesseract reads the same text.
"""

from __future__ import annotations

import argparse
import gzip
import io
import shutil
import tempfile
import time
from pathlib import Path

NAME = "gnuplot-scanned.pdf"
SOURCE = Path("/usr/share/doc/gnuplot/gnuplot.pdf")  # apt-get install gnuplot-doc
FIRST, LAST = 31, 54  # physical pages of the source, 1-based, inclusive
DPI = 200
ANGLES = (-0.4, 0.3)
JPEG_QUALITY = 80
FIXED_DATE = time.gmtime(1705309200)  # 2024-01-15 09:00 UTC


def source_pdf() -> Path | None:
    """The Debian gnuplot manual, plain or gzipped, if installed."""
    for path in (SOURCE, SOURCE.with_name(SOURCE.name + ".gz")):
        if path.is_file():
            return path
    return None


def build(folder: Path, source: Path | None = None) -> Path:
    """Writes the scanned PDF into ``folder``; returns its path."""
    source = source or source_pdf()
    if source is None:
        raise SystemExit(f"{SOURCE} not found: apt-get install gnuplot-doc")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NAME
    with tempfile.TemporaryDirectory() as tmp:
        plain = source
        if source.suffix == ".gz":
            plain = Path(tmp) / source.stem
            with gzip.open(source) as src, plain.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        images = list(_scans(plain))
    first, rest = images[0], images[1:]
    first.save(
        path,
        "PDF",
        save_all=True,
        append_images=rest,
        resolution=DPI,
        quality=JPEG_QUALITY,
        title="gnuplot 5.4 manual, pages 31-54 (scanned)",
        producer="AI Mentor bench/devset/make_scans.py",
        creationDate=FIXED_DATE,
        modDate=FIXED_DATE,
    )
    return path


def _scans(pdf: Path):
    import pypdfium2
    from PIL import Image

    document = pypdfium2.PdfDocument(str(pdf))
    try:
        for n, index in enumerate(range(FIRST - 1, LAST)):
            page = document[index]
            image = page.render(scale=DPI / 72, grayscale=True).to_pil().convert("L")
            angle = ANGLES[n % len(ANGLES)]
            turned = image.rotate(angle, resample=Image.BICUBIC, expand=False, fillcolor=255)
            # Through JPEG once, as the scanner stored it.
            buffer = io.BytesIO()
            turned.save(buffer, "JPEG", quality=JPEG_QUALITY)
            yield Image.open(io.BytesIO(buffer.getvalue())).convert("L")
    finally:
        document.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--source", type=Path, help=f"the gnuplot manual (default {SOURCE}[.gz])")
    args = p.parse_args()
    print(build(args.out_dir, args.source))
