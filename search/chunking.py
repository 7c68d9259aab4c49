"""Splitting text into overlapping chunks of about SEARCH_CHUNK_TOKENS tokens, keeping line positions."""

from __future__ import annotations

from dataclasses import dataclass

CHARS_PER_TOKEN = 4  # English prose and code average about four characters a token


@dataclass(frozen=True)
class Chunk:
    text: str
    ordinal: int
    line_start: int  # 1-based, inclusive, within the text that was split
    line_end: int
    page: int | None = None


def chunk_text(text: str, *, max_tokens: int, overlap_tokens: int, page: int | None = None,
               first_ordinal: int = 0) -> list[Chunk]:
    """Whole lines are packed into chunks up to the budget; the last lines of one chunk start the next.

    A single line longer than the budget is cut into pieces of its own (minified JSON, long paragraphs).
    """
    budget = max(64, max_tokens * CHARS_PER_TOKEN)
    overlap = max(0, min(overlap_tokens * CHARS_PER_TOKEN, budget // 2))
    pieces: list[tuple[int, str]] = []  # (line number, text) with long lines cut
    for number, line in enumerate(text.splitlines(), start=1):
        while len(line) > budget:
            cut = line.rfind(" ", budget // 2, budget)
            cut = cut if cut > 0 else budget
            pieces.append((number, line[:cut]))
            line = line[cut:].lstrip()
        pieces.append((number, line))
    chunks: list[Chunk] = []
    start = 0
    while start < len(pieces):
        end, size = start, 0
        while end < len(pieces) and (end == start or size + len(pieces[end][1]) + 1 <= budget):
            size += len(pieces[end][1]) + 1
            end += 1
        body = "\n".join(piece for _, piece in pieces[start:end]).strip()
        if body:
            chunks.append(Chunk(text=body, ordinal=first_ordinal + len(chunks), line_start=pieces[start][0],
                                line_end=pieces[end - 1][0], page=page))
        if end >= len(pieces):
            break
        back, carried = end, 0
        while back - 1 > start and carried + len(pieces[back - 1][1]) + 1 <= overlap:
            back -= 1
            carried += len(pieces[back][1]) + 1
        start = back
    return chunks


def chunk_pages(pages: list[str], *, max_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """A PDF's pages are chunked one by one, so every chunk names the page it comes from."""
    chunks: list[Chunk] = []
    for number, page_text in enumerate(pages, start=1):
        chunks.extend(chunk_text(page_text, max_tokens=max_tokens, overlap_tokens=overlap_tokens, page=number,
                                 first_ordinal=len(chunks)))
    return chunks
