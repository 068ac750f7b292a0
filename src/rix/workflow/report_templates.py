"""Report templates: the headings a radiologist writes under, chosen by the study's
modality and body part.

The region keeps its own templates in ``report_templates``; the defaults below are
seeded into the empty table once, and are the region's to edit from then on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from rix.archive import Archive
from rix.index.database import begin_write
from rix.index.workflow_tables import report_templates


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    name: str
    modality: str  # '' any
    body_part: str  # '' any
    text: str


def _sections(*lines: str) -> str:
    """A template's text: its lines, a blank line between, each heading ending in a
    colon for the radiologist to write after."""
    return "\n\n".join(line if line.endswith(".") else f"{line}:" for line in lines) + "\n"


DEFAULT_TEMPLATES = (
    Template(
        name="CT head",
        modality="CT",
        body_part="HEAD",
        text=_sections(
            "Clinical details",
            "Technique: non-contrast CT of the head.",
            "Brain parenchyma and grey-white differentiation",
            "Ventricles and extra-axial spaces",
            "Bones, sinuses and mastoids",
            "Conclusion",
        ),
    ),
    Template(
        name="CT chest",
        modality="CT",
        body_part="CHEST",
        text=_sections(
            "Clinical details",
            "Technique: CT of the chest.",
            "Lungs and airways",
            "Pleura",
            "Mediastinum, hila and heart",
            "Upper abdomen, bones and soft tissues",
            "Conclusion",
        ),
    ),
    Template(
        name="CT abdomen and pelvis",
        modality="CT",
        body_part="ABDOMEN",
        text=_sections(
            "Clinical details",
            "Technique: CT of the abdomen and pelvis.",
            "Liver, gallbladder, pancreas, spleen, adrenals",
            "Kidneys and bladder",
            "Bowel and peritoneum",
            "Lymph nodes and vessels",
            "Bones and lung bases",
            "Conclusion",
        ),
    ),
    Template(
        name="MR knee",
        modality="MR",
        body_part="KNEE",
        text=_sections(
            "Clinical details",
            "Technique: MR of the knee.",
            "Menisci",
            "Cruciate and collateral ligaments",
            "Extensor mechanism",
            "Articular cartilage and bone marrow",
            "Effusion and soft tissues",
            "Conclusion",
        ),
    ),
    Template(
        name="MR brain",
        modality="MR",
        body_part="BRAIN",
        text=_sections(
            "Clinical details",
            "Technique: MR of the brain.",
            "Brain parenchyma and white matter",
            "Ventricles and extra-axial spaces",
            "Posterior fossa and craniocervical junction",
            "Conclusion",
        ),
    ),
    Template(
        name="CR chest",
        modality="CR",
        body_part="CHEST",
        text=_sections(
            "Clinical details",
            "Projection",
            "Lungs and pleura",
            "Heart and mediastinum",
            "Bones and soft tissues",
            "Conclusion",
        ),
    ),
    Template(
        name="US abdomen",
        modality="US",
        body_part="ABDOMEN",
        text=_sections(
            "Clinical details",
            "Liver",
            "Gallbladder and bile ducts",
            "Pancreas and spleen",
            "Kidneys",
            "Conclusion",
        ),
    ),
    Template(
        name="General",
        modality="",
        body_part="",
        text=_sections("Clinical details", "Technique", "Findings", "Conclusion"),
    ),
)


def _seed(conn: Connection) -> None:
    """The defaults, once, into an empty table: afterwards the table is the region's to
    edit, and a template deleted there stays deleted."""
    if conn.execute(select(report_templates.c.id).limit(1)).first() is not None:
        return
    now = time.time()
    conn.execute(
        insert(report_templates),
        [
            {
                "name": t.name,
                "modality": t.modality,
                "body_part": t.body_part,
                "text": t.text,
                "updated_at": now,
            }
            for t in DEFAULT_TEMPLATES
        ],
    )


def templates(archive: Archive) -> list[Template]:
    """Every report template, the defaults seeded into the table on first use."""
    with archive.engine.connect() as conn:
        rows = conn.execute(select(report_templates).order_by(report_templates.c.name)).all()
    if not rows:
        with begin_write(archive.engine) as conn:
            _seed(conn)
            rows = conn.execute(select(report_templates).order_by(report_templates.c.name)).all()
    return [
        Template(name=r.name, modality=r.modality, body_part=r.body_part, text=r.text) for r in rows
    ]


def template_for(
    found: list[Template], *, modalities: list[str], body_part: str
) -> Template | None:
    """The template that fits a study best: its modality and body part, else its
    modality with any body part, else one for any study."""
    part = body_part.upper()
    wanted = {m.upper() for m in modalities}

    def fits(t: Template) -> int:
        if t.modality and t.modality.upper() not in wanted:
            return -1
        if t.body_part and t.body_part.upper() != part:
            return -1
        return (2 if t.modality else 0) + (1 if t.body_part else 0)

    ranked = sorted(((fits(t), t.name, t) for t in found), key=lambda x: (-x[0], x[1]))
    return ranked[0][2] if ranked and ranked[0][0] >= 0 else None
