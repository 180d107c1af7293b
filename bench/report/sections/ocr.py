"""Section 6: reading scanned pages (bench/ocr.py)."""

from ..section import Section

SECTION = Section("ocr", "## 6. OCR of scanned pages", "ocr.md.j2", "ocr", "python bench/ocr.py")
