"""Cutting pages into chunks that fit the embedder's window.

Chunks never cross a page, so every chunk cites exactly one page. Sizes are
measured with the embedder's own tokenizer: a chunk longer than the model
reads is embedded from its beginning only, and the rest cannot be found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from mentor.index.store import indexed_text
from mentor.ingest.pages import SECTION_SEPARATOR, Page

# [CLS] and [SEP] take two places in the embedder's window.
SPECIAL_TOKENS = 2
# A table-of-contents or index line: a title, dot leaders, a page number.
LEADER_LINE = re.compile(r"(?:\.\s?){4,}\s*[\divxlc]+\s*$", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class Chunk:
    page: Page
    text: str  # what a student is shown
    context: str = ""  # the section it sits in, searched with it but not shown

    @property
    def indexed_text(self) -> str:
        """What is embedded and keyword-indexed: a passage that says "use
        the -ascii option" is found for "saving a matrix as text" once it
        carries its section, "Basic Input and Output › Saving Data"."""
        return indexed_text(self.context, self.text)


class Chunker:
    def __init__(
        self,
        tokenize: Callable[[str], list],
        max_tokens: int,
        chunk_tokens: int,
        overlap: int,
        section_context: bool = True,
    ):
        from llama_index.core.node_parser import SentenceSplitter

        if chunk_tokens + SPECIAL_TOKENS > max_tokens:
            raise ValueError(
                f"CHUNK_TOKENS={chunk_tokens} does not fit the embedder, which reads "
                f"{max_tokens - SPECIAL_TOKENS} tokens per chunk: lower CHUNK_TOKENS"
            )
        self._splitter = SentenceSplitter(
            chunk_size=chunk_tokens, chunk_overlap=overlap, tokenizer=tokenize, paragraph_separator="\n\n"
        )
        self._tokenize = tokenize
        # The section must fit beside a full chunk, or it would push the
        # chunk's end out of the embedder's window.
        self._context_tokens = max_tokens - SPECIAL_TOKENS - chunk_tokens if section_context else 0
        self._fitted_sections: dict[str, str] = {}

    def chunks(self, pages: Iterable[Page]) -> Iterator[Chunk]:
        for page in pages:
            text = page.text.strip()
            if text:
                context = self._fitted(page.section)
                for piece in self._splitter.split_text(text):
                    if not is_navigation(piece):
                        yield Chunk(page=page, text=piece, context=context)

    def _fitted(self, section: str) -> str:
        """The section trail, dropping its outer levels until it fits."""
        if section not in self._fitted_sections:
            parts = section.split(SECTION_SEPARATOR) if section else []
            while parts and len(self._tokenize(SECTION_SEPARATOR.join(parts))) > self._context_tokens:
                parts = parts[1:]
            self._fitted_sections[section] = SECTION_SEPARATOR.join(parts)
        return self._fitted_sections[section]


def is_navigation(text: str) -> bool:
    """True for contents and index listings: they match every question's
    words, answer none, and a citation of them sends a student nowhere."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(LEADER_LINE.findall(text)) >= 0.3 * len(lines)
