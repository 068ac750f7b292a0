"""A signed report as a DICOM Encapsulated PDF (PS3.3 A.45.1), beside its Basic Text SR.

Many PACS, EPR viewers and patient portals show a PDF where they show no SR; the PDF is
the same signed text, with the patient and study it is about, stored in the study like
the SR (built from the index, stored through the one ingest path as the study's trust).

The PDF is written here, not by a library: a report is plain text, and a plain-text PDF
(PDF 1.4, ISO 32000-1) needs a catalog, a page tree, one standard font (Helvetica, no font
file) and a content stream per page, which is a hundred lines with nothing to update for
CVEs. Text is set in WinAnsiEncoding: a character it lacks is shown as ``?``.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from sqlalchemy import Connection

from rix.ingest import sr

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
SERIES_NUMBER = 9902  # after the report's SR (9901)

# A4 in points, margins and Helvetica 10 pt on a 14 pt leading: about 90 characters a line
PAGE_WIDTH, PAGE_HEIGHT, MARGIN, LEADING, COLUMNS = 595, 842, 56, 14, 90
LINES_PER_PAGE = (PAGE_HEIGHT - 2 * MARGIN) // LEADING


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    text: str
    bold: bool = False


def _literal(text: str) -> bytes:
    """A PDF string literal (7.3.4.2) in WinAnsiEncoding."""
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def wrap(lines: Sequence[Line]) -> list[Line]:
    """Lines cut to the page's width at spaces (a blank line kept)."""
    out: list[Line] = []
    for line in lines:
        parts = textwrap.wrap(line.text, COLUMNS, replace_whitespace=False) or [""]
        out.extend(Line(text=p, bold=line.bold) for p in parts)
    return out


def _page_stream(lines: Sequence[Line]) -> bytes:
    body = [b"BT", f"{LEADING} TL {MARGIN} {PAGE_HEIGHT - MARGIN} Td".encode()]
    for line in lines:
        body.append(b"/F2 10 Tf " if line.bold else b"/F1 10 Tf ")
        body[-1] += _literal(line.text) + b" Tj T*"
    body.append(b"ET")
    return b"\n".join(body)


def document(lines: Sequence[Line], *, title: str) -> bytes:
    """A PDF of ``lines`` (wrapped and paged), with ``title`` in its information."""
    wrapped = wrap(lines)
    pages = [wrapped[i : i + LINES_PER_PAGE] for i in range(0, len(wrapped), LINES_PER_PAGE)]
    pages = pages or [[]]
    first_page = 6  # 1 catalog, 2 page tree, 3 and 4 fonts, 5 information
    kids = " ".join(f"{first_page + 2 * n} 0 R" for n in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Title " + _literal(title) + b" /Producer (rix) >>",
    ]
    for n, page in enumerate(pages):
        stream = _page_stream(page)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] "
            f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> "
            f"/Contents {first_page + 2 * n + 1} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")  # binary comment: 7.5.2
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 5 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def instance_uid_for(sr_instance_uid: str) -> str:
    """The PDF's SOP Instance UID, made from its SR's: a retried job finds it stored."""
    return str(generate_uid(entropy_srcs=[sr_instance_uid, "encapsulated-pdf"]))


def report_document(
    conn: Connection,
    *,
    study_uid: str,
    text: str,
    author: str,
    organisation: str,
    document_title: str,
    sop_instance_uid: str,
) -> Dataset:
    """An Encapsulated PDF in ``study_uid`` of a signed report: the patient and study as
    the index holds them, the text, and who signed it."""
    ds = sr.study_header(conn, study_uid)
    now = time.gmtime()
    date, clock = time.strftime("%Y%m%d", now), time.strftime("%H%M%S", now)
    lines = [
        Line(text=document_title, bold=True),
        Line(text=f"Patient: {str(ds.PatientName).replace('^', ' ')}  ID: {ds.PatientID}"),
        Line(
            text=f"Study: {ds.StudyDescription}  date {ds.StudyDate}  "
            f"accession {ds.AccessionNumber}"
        ),
        Line(text=""),
        *(Line(text=paragraph) for paragraph in text.splitlines()),
        Line(text=""),
        Line(text=f"Signed by {author}, {organisation}, {date} {clock} UTC", bold=True),
    ]
    body = document(lines, title=document_title)
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.SOPInstanceUID = sop_instance_uid
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = document_title[:64]
    ds.Manufacturer = "rix"
    ds.ConversionType = "SYN"  # SC Equipment: made by software
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = date, clock
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, clock
    ds.AcquisitionDateTime = date + clock
    ds.BurnedInAnnotation = "YES"  # it names the patient
    ds.DocumentTitle = document_title[:64]
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = sr.REPORT_TITLE
    ds.ConceptNameCodeSequence = DicomSequence([code])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(body)  # OB is padded to even length
    ds.EncapsulatedDocument = body + (b"\0" if len(body) % 2 else b"")
    return ds
