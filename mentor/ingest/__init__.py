"""Files to points: a course file's pages (PDF, OCR, slides, Word, text),
their chunks, and the pipeline that embeds them into an index.

Owns the reading of files. It may import ``mentor.index`` (the pipeline
writes points there) and ``mentor.settings``; nothing above it.
"""
