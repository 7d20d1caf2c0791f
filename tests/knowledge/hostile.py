"""Hostile documents, generated for real: a DOCX zip bomb, a DOCX of many members, HTML
nested 100,000 deep, a PDF longer than the page cap, and HTML too long to read in time."""

import io
import zipfile

import docx
from pypdf import PdfWriter

MB = 1024 * 1024
NESTING = 100_000


def _docx() -> zipfile.ZipFile:
    buffer = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("A harmless opening paragraph.")
    document.save(buffer)
    return zipfile.ZipFile(io.BytesIO(buffer.getvalue()))


def zip_bomb_docx(expanded_mb: int) -> bytes:
    """A valid DOCX whose document.xml inflates to `expanded_mb` MB of paragraphs
    (about 1/1000 of that compressed): python-docx would parse all of it into one tree."""
    source = _docx()
    out = io.BytesIO()
    paragraph = b"<w:p><w:r><w:t>boom</w:t></w:r></w:p>"
    block = paragraph * (MB // len(paragraph))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for info in source.infolist():
            data = source.read(info)
            if info.filename != "word/document.xml":
                archive.writestr(info.filename, data)
                continue
            head, tail = data.split(b"</w:body>")
            with archive.open("word/document.xml", "w", force_zip64=True) as member:
                member.write(head)
                for _ in range(expanded_mb):
                    member.write(block)
                member.write(b"</w:body>" + tail)
    return out.getvalue()


def many_members_docx(members: int) -> bytes:
    source = _docx()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            archive.writestr(info.filename, source.read(info))
        for number in range(members):
            archive.writestr(f"customXml/strata{number}.xml", b"<a/>")
    return out.getvalue()


def nested_html(depth: int = NESTING) -> bytes:
    return (
        "<!DOCTYPE html><html><body>" + "<div>" * depth + "The innermost words." + "</div>" * depth + "</body></html>"
    ).encode()


def long_pdf(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def long_html(mb: int) -> bytes:
    """Ordinary HTML, only long: several seconds of parsing per 10 MB on these machines."""
    paragraph = b"<p>Some words here and there, in a sentence of its own.</p>\n"
    return b"<!DOCTYPE html><html><body>" + paragraph * (mb * MB // len(paragraph)) + b"</body></html>"
