"""Documents to text: what a file is (from its bytes, not its name), then its text in
sections that keep the page and heading each passage came from.

Every problem a user can fix raises UnreadableDocument with a message saying what is
wrong with the file; nothing here knows about databases or jobs."""

import io
import re
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

from app.core.errors import InvalidInput

SUPPORTED = "PDF, DOCX, HTML, Markdown or plain text"

# What the extension claims, to say "X, not Y" when the bytes disagree.
CLAIMED_BY_EXTENSION = {
    ".pdf": "a PDF",
    ".docx": "a Word (DOCX) document",
    ".html": "an HTML page",
    ".htm": "an HTML page",
    ".md": "a Markdown file",
    ".markdown": "a Markdown file",
    ".txt": "a text file",
}

# Formats recognised by their first bytes that Strata does not read.
FOREIGN_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office file (.doc/.xls/.ppt); save it as DOCX or PDF"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"MZ", "a Windows program"),
    (b"{\\rtf", "an RTF document; save it as DOCX or PDF"),
)

ZIP_MEMBERS = (
    ("word/document.xml", "docx"),
    ("xl/workbook.xml", "an Excel workbook"),
    ("ppt/presentation.xml", "a PowerPoint presentation"),
)


class UnreadableDocument(InvalidInput):
    """The file cannot be ingested, for a reason its uploader can act on."""


@dataclass(frozen=True)
class Section:
    text: str
    page: int | None = None
    heading: str | None = None


@dataclass(frozen=True)
class ParseLimits:
    """How much of a file Strata reads: checked before the costly part, so a hostile file
    fails with a message instead of filling memory (the parse process has hard limits too)."""

    pdf_max_pages: int
    archive_max_bytes: int  # a DOCX's members, unzipped
    archive_max_members: int

    @classmethod
    def of(cls, settings) -> "ParseLimits":
        return cls(
            pdf_max_pages=settings.pdf_max_pages,
            archive_max_bytes=settings.archive_max_expanded_mb * 1024 * 1024,
            archive_max_members=settings.archive_max_members,
        )


@dataclass(frozen=True)
class ParsedDocument:
    content_type: str  # pdf, docx, html, markdown or text
    sections: list[Section]
    page_count: int | None = None


def parse_document(data: bytes, filename: str, limits: ParseLimits) -> ParsedDocument:
    content_type = sniff(data, filename)
    if content_type == "pdf":
        parsed = _parse_pdf(data, limits)
    elif content_type == "docx":
        parsed = _parse_docx(data, limits)
    else:
        parser = {"html": _parse_html, "markdown": _parse_markdown}.get(content_type, _parse_text)
        parsed = parser(_decode(data))
    sections = [Section(clean(s.text), s.page, clean(s.heading) if s.heading else None) for s in parsed.sections]
    sections = [s for s in sections if s.text]
    if not sections:
        raise UnreadableDocument(_no_text_message(content_type))
    return ParsedDocument(content_type, sections, parsed.page_count)


def sniff(data: bytes, filename: str) -> str:
    """The document's format from its bytes; the extension only tells Markdown from plain text."""
    extension = PurePath(filename).suffix.lower()
    if not data.strip():
        raise UnreadableDocument("The file is empty.")
    if data[:1024].lstrip().startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return _sniff_zip(data, extension)
    for magic, what in FOREIGN_MAGIC:
        if data.startswith(magic):
            raise UnreadableDocument(_foreign(what, extension))
    text = _decode(data)
    if extension == ".pdf":
        raise UnreadableDocument("This file is named .pdf but is not a PDF (it does not start with %PDF-).")
    if extension == ".docx":
        raise UnreadableDocument("This file is named .docx but is not a Word document (DOCX files are ZIP archives).")
    head = text[:2048].lower()
    if extension in (".html", ".htm") or re.search(r"<!doctype html|<html[\s>]|<body[\s>]|<head[\s>]", head):
        return "html"
    if extension in (".md", ".markdown"):
        return "markdown"
    return "text"


def _foreign(what: str, extension: str) -> str:
    claimed = CLAIMED_BY_EXTENSION.get(extension)
    if claimed:
        return f"This file is {what}, not {claimed}."
    return f"This file is {what}, which Strata cannot read. Upload {SUPPORTED}."


def _sniff_zip(data: bytes, extension: str) -> str:
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except zipfile.BadZipFile:
        raise UnreadableDocument("This file is a damaged ZIP archive (a DOCX is one) and cannot be read.") from None
    for member, kind in ZIP_MEMBERS:
        if member in names:
            if kind == "docx":
                return kind
            raise UnreadableDocument(_foreign(kind, extension))
    raise UnreadableDocument(_foreign("a ZIP archive", extension))


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise UnreadableDocument(f"This file is binary data of an unknown kind. Upload {SUPPORTED}.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Legacy Windows text; every byte decodes, so a text file is never refused for its encoding.
        return data.decode("cp1252", errors="replace")


def _no_text_message(content_type: str) -> str:
    if content_type == "pdf":
        return "The PDF has no text layer (a scan?); Strata reads text, not images."
    return "The file contains no text."


# ------------------------------------------------------------------ cleaning

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u00ad]")
_HYPHENATED_BREAK = re.compile(r"(\w)-\n(?=[a-z])")
_SPACES = re.compile(r"\s+")


def clean(text: str) -> str:
    """One line of text: ligatures (PDF's "ﬁ") and compatibility forms unfolded, control
    characters, soft hyphens and words hyphenated across line breaks undone, whitespace collapsed."""
    text = _CONTROL.sub(" ", unicodedata.normalize("NFKC", text))
    text = _HYPHENATED_BREAK.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip()


# ------------------------------------------------------------------------ PDF


def _parse_pdf(data: bytes, limits: ParseLimits) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _opens_without_password(reader):
            raise UnreadableDocument(
                "The PDF is encrypted (password-protected); remove the password and upload it again."
            )
        pages = reader.pages
        page_count = len(pages)
        if page_count > limits.pdf_max_pages:
            raise UnreadableDocument(
                f"This PDF has more than {limits.pdf_max_pages} pages, more than Strata reads in one document;"
                " split it into parts and upload those."
            )
        headings = _outline_headings(reader)
        sections = []
        heading = None
        for number, page in enumerate(pages, start=1):
            heading = headings.get(number, heading)
            sections.append(Section(page.extract_text() or "", page=number, heading=heading))
    except UnreadableDocument:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise UnreadableDocument(f"The PDF is damaged and cannot be read ({exc}).") from None
    if page_count == 0:
        raise UnreadableDocument("The PDF has no pages.")
    return ParsedDocument("pdf", sections, page_count)


def _opens_without_password(reader) -> bool:
    """Many PDFs are encrypted only to restrict printing, with an empty password."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # noqa: BLE001 - any failure means we cannot open it
        return False


def _outline_headings(reader) -> dict[int, str]:
    """Bookmark titles by the page they start on (1-based); a PDF without an outline has none."""
    headings: dict[int, str] = {}

    def walk(items) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item)
                continue
            try:
                headings.setdefault(reader.get_destination_page_number(item) + 1, str(item.title))
            except Exception:  # noqa: BLE001, S112 - a broken bookmark only loses its heading
                continue

    try:
        walk(reader.outline)
    except Exception:  # noqa: BLE001 - a broken outline only loses headings
        return {}
    return headings


# ----------------------------------------------------------------------- DOCX


def _check_archive(data: bytes, limits: ParseLimits) -> None:
    """Refuses a zip bomb before anything is unpacked. The sizes are those the archive
    declares; Python's zipfile never inflates a member beyond its declared size."""
    members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    if len(members) > limits.archive_max_members:
        raise UnreadableDocument(
            f"This DOCX holds more than {limits.archive_max_members} files, more than a Word document needs;"
            " it was not unpacked."
        )
    if sum(member.file_size for member in members) > limits.archive_max_bytes:
        raise UnreadableDocument(
            f"This DOCX expands to more than {limits.archive_max_bytes // (1024 * 1024)} MB when unpacked,"
            " more than Strata reads in one document; it was not unpacked. Save it as PDF or split it."
        )


def _parse_docx(data: bytes, limits: ParseLimits) -> ParsedDocument:
    import docx
    from docx.table import Table

    try:
        _check_archive(data, limits)
        document = docx.Document(io.BytesIO(data))
        sections: list[Section] = []
        heading = None
        body: list[str] = []

        def flush() -> None:
            if body:
                sections.append(Section("\n".join(body), heading=heading))
                body.clear()

        for block in document.iter_inner_content():
            if isinstance(block, Table):
                body.extend(" | ".join(cell.text for cell in row.cells) for row in block.rows)
                continue
            style = (block.style.name if block.style is not None else "") or ""
            if style.startswith(("Heading", "Title")) and block.text.strip():
                flush()
                heading = block.text.strip()
            elif block.text.strip():
                body.append(block.text)
        flush()
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise UnreadableDocument(f"The Word document is damaged and cannot be read ({exc}).") from None
    return ParsedDocument("docx", sections)


# ----------------------------------------------------------------------- HTML

_BLOCK_TAGS = frozenset(
    "p div section article main aside li ul ol dl dt dd tr td th table pre blockquote br hr figure figcaption".split()
)
_SKIPPED_TAGS = frozenset("script style noscript template nav header footer head svg button form".split())
_SKIPPED_ROLES = frozenset(("navigation", "search", "banner", "contentinfo"))
_VOID_TAGS = frozenset("area base br col embed hr img input link meta source track wbr".split())
_HEADING_TAGS = frozenset(("h1", "h2", "h3", "h4", "h5", "h6"))
MAX_TITLE_CHARACTERS = 500


class _HtmlText(HTMLParser):
    """Visible text by heading; page chrome (navigation, scripts, footers, permalinks) left out.

    Linear in the input however deep its nesting: the open elements are counted by name and
    by whether they skip their content, never scanned per tag or per piece of text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.title = ""
        self._open: list[tuple[str, bool]] = []  # (tag, skips its content)
        self._open_by_tag: Counter[str] = Counter()
        self._open_skipping = 0
        self._heading: str | None = None
        self._heading_parts: list[str] | None = None
        self._body: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs) -> None:
        attributes = dict(attrs)
        if tag == "title":
            self._in_title = True
        if tag in _BLOCK_TAGS:
            self._body.append("\n")
        if tag in _VOID_TAGS:
            return
        classes = (attributes.get("class") or "").split()
        skips = (
            tag in _SKIPPED_TAGS
            or attributes.get("role") in _SKIPPED_ROLES
            or "headerlink" in classes
            or any(name in ("sphinxsidebar", "related", "footer") for name in classes)
        )
        self._open.append((tag, skips))
        self._open_by_tag[tag] += 1
        self._open_skipping += skips
        if tag in _HEADING_TAGS and not self._open_skipping:
            self._flush()
            self._heading_parts = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _HEADING_TAGS and self._heading_parts is not None:
            self._heading = clean("".join(self._heading_parts).replace("¶", "")) or self._heading
            self._heading_parts = None
        # An end tag closes the innermost open element of its name and any left unclosed inside it.
        if self._open_by_tag[tag]:
            while True:
                closed, skips = self._open.pop()
                self._open_by_tag[closed] -= 1
                self._open_skipping -= skips
                if closed == tag:
                    break
        if tag in _BLOCK_TAGS:
            self._body.append("\n")

    def handle_data(self, data: str) -> None:
        # The title only names sections without a heading: its start is enough, and an
        # unclosed <title> cannot make every section re-read the whole page.
        if self._in_title and len(self.title) < MAX_TITLE_CHARACTERS:
            self.title += data[:MAX_TITLE_CHARACTERS]
        if self._open_skipping:
            return
        if self._heading_parts is not None:
            self._heading_parts.append(data)
        else:
            self._body.append(data)

    def _flush(self) -> None:
        text = "".join(self._body)
        if text.strip():
            self.sections.append(Section(text, heading=self._heading or clean(self.title) or None))
        self._body = []

    def close(self) -> None:
        super().close()
        self._flush()


def _parse_html(text: str) -> ParsedDocument:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return ParsedDocument("html", parser.sections)


# ------------------------------------------------------------------- Markdown

_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)")


def _parse_markdown(text: str) -> ParsedDocument:
    sections: list[Section] = []
    heading = None
    body: list[str] = []
    in_fence = False

    def flush() -> None:
        if "".join(body).strip():
            sections.append(Section("\n".join(body), heading=heading))
        body.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence and (match := _ATX_HEADING.match(line)):
            flush()
            heading = _plain_markdown(match.group(1))
        elif not in_fence and _SETEXT_UNDERLINE.match(line) and body and body[-1].strip():
            title = body.pop()
            flush()
            heading = _plain_markdown(title)
        else:
            body.append(line if in_fence else _plain_markdown(line))
    flush()
    return ParsedDocument("markdown", sections)


def _plain_markdown(line: str) -> str:
    return _EMPHASIS.sub("", _LINK.sub(r"\1", line))


# ----------------------------------------------------------------- plain text


def _parse_text(text: str) -> ParsedDocument:
    return ParsedDocument("text", [Section(text)])
