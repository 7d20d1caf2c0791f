"""Parsing and chunking on real files: each format keeps pages and headings, and each
kind of bad file fails with a message its uploader can act on."""

import io
import os
import zipfile
from pathlib import Path

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from app.core.ml import get_embedder
from app.core.settings import get_settings
from app.knowledge.chunking import chunk_sections, split_sentences
from app.knowledge.parse_process import parse_isolated
from app.knowledge.parsing import ParseLimits, Section, UnreadableDocument, parse_document
from tests.knowledge import hostile
from tests.knowledge.conftest import ALICE_ANSWER_PAGE, ALICE_ANSWER_TEXT, LOOKING_GLASS_DOCX

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
LIMITS = ParseLimits(pdf_max_pages=2000, archive_max_bytes=256 * 1024 * 1024, archive_max_members=10_000)


def word_pieces(texts):
    return [n - 2 for n in get_embedder().token_counts(texts)]


def test_pdf_is_read_page_by_page(alice_pdf):
    parsed = parse_document(alice_pdf, "alice.pdf", LIMITS)
    assert parsed.content_type == "pdf" and parsed.page_count == 83
    answer_page = next(s for s in parsed.sections if ALICE_ANSWER_TEXT in s.text)
    assert answer_page.page == ALICE_ANSWER_PAGE
    assert "\n" not in answer_page.text and "  " not in answer_page.text


def test_docx_keeps_headings_from_paragraph_styles():
    document = docx.Document()
    document.add_heading("Returns", level=1)
    document.add_paragraph("Goods may be returned within 30 days.")
    document.add_heading("Shipping", level=2)
    document.add_paragraph("We ship to the moon on Tuesdays.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Zone", "Price"
    buffer = io.BytesIO()
    document.save(buffer)
    parsed = parse_document(buffer.getvalue(), "policy.docx", LIMITS)
    assert [(s.heading, s.text) for s in parsed.sections] == [
        ("Returns", "Goods may be returned within 30 days."),
        ("Shipping", "We ship to the moon on Tuesdays. Zone | Price"),
    ]


def test_sample_docx_is_read():
    parsed = parse_document(LOOKING_GLASS_DOCX.read_bytes(), "looking-glass.docx", LIMITS)
    assert parsed.content_type == "docx"
    assert "Looking-glass House" in " ".join(s.text for s in parsed.sections)


def test_html_keeps_headings_and_drops_page_chrome():
    html = b"""<!DOCTYPE html><html><head><title>Guide</title><script>var x = 1;</script></head><body>
    <div role="navigation"><a href="/">index</a> next</div>
    <h1>Install<a class="headerlink" href="#i">\xc2\xb6</a></h1><p>Run the installer.</p>
    <h2>Upgrade</h2><p>Run it again &amp; restart.<br>Done.</p><footer>Copyright</footer></body></html>"""
    parsed = parse_document(html, "guide.html", LIMITS)
    assert [(s.heading, s.text) for s in parsed.sections] == [
        ("Install", "Run the installer."),
        ("Upgrade", "Run it again & restart. Done."),
    ]


def test_markdown_headings_outside_code_fences():
    text = b"Intro line.\n\n# Setup\nInstall **it** with [pip](https://x).\n```\n# not a heading\n```\n\nUsage\n-----\nCall it.\n"
    parsed = parse_document(text, "README.md", LIMITS)
    assert [(s.heading, s.text) for s in parsed.sections] == [
        (None, "Intro line."),
        ("Setup", "Install it with pip. # not a heading"),
        ("Usage", "Call it."),
    ]


def test_plain_text_in_any_common_encoding():
    assert parse_document("Café au lait.".encode("cp1252"), "notes.txt", LIMITS).sections == [Section("Café au lait.")]
    assert parse_document("\ufeffPlain words.".encode(), "notes", LIMITS).content_type == "text"


def _encrypted_pdf(alice_pdf: bytes) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(alice_pdf)))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _zip(member: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(member, "x")
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("scan.pdf", lambda pdf: PNG, "This file is a PNG image, not a PDF."),
        ("empty.pdf", lambda pdf: b"", "The file is empty."),
        ("blank.txt", lambda pdf: b"  \n\n ", "The file is empty."),
        ("locked.pdf", _encrypted_pdf, "The PDF is encrypted (password-protected)"),
        ("cut.pdf", lambda pdf: pdf[:3000], "The PDF is damaged and cannot be read"),
        ("scan2.pdf", lambda pdf: _blank_pdf(), "The PDF has no text layer"),
        ("notes.pdf", lambda pdf: b"just some words", "This file is named .pdf but is not a PDF"),
        (
            "sheet.xlsx",
            lambda pdf: _zip("xl/workbook.xml"),
            "This file is an Excel workbook, which Strata cannot read.",
        ),
        (
            "photo.docx",
            lambda pdf: b"\xff\xd8\xff\xe0" + bytes(32),
            "This file is a JPEG image, not a Word (DOCX) document.",
        ),
        ("report.docx", lambda pdf: _zip("other.xml"), "This file is a ZIP archive, not a Word (DOCX) document."),
        ("data.bin", lambda pdf: bytes(range(256)) * 4, "This file is binary data of an unknown kind."),
    ],
)
def test_bad_files_fail_with_a_clear_message(alice_pdf, name, make, message):
    with pytest.raises(UnreadableDocument) as raised:
        parse_document(make(alice_pdf), name, LIMITS)
    assert raised.value.message.startswith(message)


def test_chunks_fit_the_embedder_overlap_and_keep_page_and_heading(alice_pdf):
    sections = parse_document(alice_pdf, "alice.pdf", LIMITS).sections
    passages = chunk_sections(sections, count_tokens=word_pieces, max_tokens=200, overlap_tokens=40)
    assert max(word_pieces([p.text for p in passages])) <= 200
    assert {p.page for p in passages} == set(range(1, 84)) - {s.page for s in sections if not s.text}
    same_page = [(a, b) for a, b in zip(passages, passages[1:], strict=False) if a.page == b.page]
    assert same_page
    # The next chunk of a page starts by repeating the previous chunk's last sentence when it fits the overlap.
    last_sentences = [(split_sentences(a.text)[-1], b) for a, b in same_page]
    fitting = [(last, b) for last, b in last_sentences if word_pieces([last])[0] <= 40]
    assert fitting and all(last in b.text[: len(last) + 300] for last, b in fitting)
    headed = chunk_sections(
        [Section("One. " * 300, page=4, heading="Cats")], count_tokens=word_pieces, max_tokens=100, overlap_tokens=20
    )
    assert len(headed) > 3 and all(p.page == 4 and p.heading == "Cats" for p in headed)


# ------------------------------------------------------------ hostile documents


def test_a_docx_zip_bomb_is_refused_before_it_is_unpacked():
    bomb = hostile.zip_bomb_docx(expanded_mb=100)
    assert len(bomb) < 1 * hostile.MB
    small = ParseLimits(pdf_max_pages=2000, archive_max_bytes=20 * hostile.MB, archive_max_members=10_000)
    with pytest.raises(UnreadableDocument) as raised:
        parse_document(bomb, "report.docx", small)
    assert raised.value.message.startswith("This DOCX expands to more than 20 MB when unpacked")


def test_a_docx_of_too_many_files_is_refused():
    few = ParseLimits(pdf_max_pages=2000, archive_max_bytes=256 * hostile.MB, archive_max_members=100)
    with pytest.raises(UnreadableDocument) as raised:
        parse_document(hostile.many_members_docx(200), "report.docx", few)
    assert raised.value.message.startswith("This DOCX holds more than 100 files")


def test_a_pdf_over_the_page_cap_is_refused():
    short = ParseLimits(pdf_max_pages=20, archive_max_bytes=256 * hostile.MB, archive_max_members=10_000)
    with pytest.raises(UnreadableDocument) as raised:
        parse_document(hostile.long_pdf(21), "long.pdf", short)
    assert raised.value.message.startswith("This PDF has more than 20 pages")


def _children() -> set[int]:
    """This process's live child processes."""
    found = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def _isolated(tmp_path, name: str, data: bytes, **limits):
    path = tmp_path / name
    path.write_bytes(data)
    settings = get_settings().model_copy(update=limits)
    return parse_isolated(path, name, settings=settings, on_progress=lambda *_: None)


def test_html_nested_100000_deep_is_read_within_the_limits(tmp_path):
    """Quadratic before: every tag and piece of text scanned all open elements (minutes at this depth)."""
    parsed = _isolated(tmp_path, "deep.html", hostile.nested_html(), parse_timeout_seconds=60)
    assert [s.text for s in parsed.sections] == ["The innermost words."]


def test_a_parse_over_the_time_limit_is_killed_with_a_clear_message(tmp_path):
    before = _children()
    with pytest.raises(UnreadableDocument) as raised:
        _isolated(tmp_path, "long.html", hostile.long_html(20), parse_timeout_seconds=1)
    assert raised.value.message.startswith("Reading this file took longer than 1 s")
    assert _children() == before  # the parse process was killed and reaped, not left running


def test_a_parse_over_the_memory_limit_fails_with_a_clear_message(tmp_path):
    with pytest.raises(UnreadableDocument) as raised:
        _isolated(
            tmp_path,
            "bomb.docx",
            hostile.zip_bomb_docx(expanded_mb=100),
            parse_max_memory_mb=100,
            archive_max_expanded_mb=1000,
        )
    assert raised.value.message.startswith("Reading this file needs more than 100 MB of memory")


def test_a_cancelled_job_kills_its_parse(tmp_path):
    """A job's cancel (or its job timeout) reaches the parse at its next progress call."""

    class Cancelled(Exception):
        pass

    def cancel(*_):
        raise Cancelled

    path = tmp_path / "long.html"
    path.write_bytes(hostile.long_html(20))
    before = _children()
    with pytest.raises(Cancelled):
        parse_isolated(path, "long.html", settings=get_settings(), on_progress=cancel)
    assert _children() == before
