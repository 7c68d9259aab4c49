"""What kind of file an upload is, and its text: plain text decoded as UTF-8, PDFs through pypdf."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass

from search.models import AttachmentKind

MARKDOWN_EXTENSIONS = {".md", ".markdown", ".mdx"}
TEXT_EXTENSIONS = {".txt", ".text", ".log", ".rst", ".tex", ".ini", ".cfg", ".conf", ".toml", ".yaml", ".yml",
                   ".xml", ".html", ".htm", ".css", ".env", ".properties"}
CODE_EXTENSIONS = {".py", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".c", ".h", ".cc", ".cpp",
                   ".hpp", ".cs", ".go", ".rs", ".rb", ".php", ".swift", ".scala", ".sh", ".bash", ".zsh", ".sql",
                   ".r", ".lua", ".pl", ".m", ".dart", ".vue", ".svelte", ".ex", ".exs", ".hs", ".clj", ".ps1"}
KINDS_BY_EXTENSION = {
    **{ext: AttachmentKind.MARKDOWN for ext in MARKDOWN_EXTENSIONS},
    **{ext: AttachmentKind.TEXT for ext in TEXT_EXTENSIONS},
    **{ext: AttachmentKind.CODE for ext in CODE_EXTENSIONS},
    ".csv": AttachmentKind.CSV, ".tsv": AttachmentKind.CSV,
    ".json": AttachmentKind.JSON, ".jsonl": AttachmentKind.JSON, ".ndjson": AttachmentKind.JSON,
    ".pdf": AttachmentKind.PDF,
}
EXTENSIONLESS_TEXT = {"makefile", "dockerfile", "readme", "license", "procfile"}
ACCEPTED = sorted(KINDS_BY_EXTENSION)


class ExtractionError(Exception):
    """The file yields no text (empty, not UTF-8, an unreadable or image-only PDF)."""


@dataclass(frozen=True)
class Extracted:
    kind: str
    pages: list[str] | None  # PDFs: the text of each page
    text: str  # everything, pages joined


def kind_of(filename: str, head: bytes) -> str | None:
    """The attachment kind from the name, checked against the first bytes; None for anything not accepted."""
    base = os.path.basename(filename).lower()
    ext = os.path.splitext(base)[1]
    kind = KINDS_BY_EXTENSION.get(ext) or (AttachmentKind.TEXT if base in EXTENSIONLESS_TEXT else None)
    if kind is None:
        return None
    if kind == AttachmentKind.PDF:
        return kind if head.startswith(b"%PDF-") else None
    # A text kind must look like text: binary files renamed to .txt carry NUL bytes early on.
    return None if b"\x00" in head else kind


def extract(kind: str, data: bytes) -> Extracted:
    """The file's text; raises ExtractionError when there is none to search."""
    if kind == AttachmentKind.PDF:
        pages = _pdf_pages(data)
        if not any(page.strip() for page in pages):
            raise ExtractionError("The PDF has no extractable text (scanned images need OCR first).")
        return Extracted(kind=kind, pages=pages, text="\n\n".join(pages))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExtractionError("The file is not UTF-8 text.") from exc
    if kind == AttachmentKind.JSON and not text.lstrip().startswith(("{", "[")) and "\n{" not in text:
        raise ExtractionError("The file is not JSON.")
    if kind == AttachmentKind.JSON:
        text = _readable_json(text)
    if not text.strip():
        raise ExtractionError("The file is empty.")
    return Extracted(kind=kind, pages=None, text=text.replace("\x00", ""))


def _readable_json(text: str) -> str:
    """Pretty-printed when it parses (one key per line chunks and cites better); as uploaded otherwise (JSONL)."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _pdf_pages(data: bytes) -> list[str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ExtractionError("The PDF is encrypted.")
        return [(page.extract_text() or "").replace("\x00", "") for page in reader.pages]
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ExtractionError("The PDF could not be read.") from exc
