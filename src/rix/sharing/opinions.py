"""The opinion sent back through a link: stored with the study as a Basic Text SR, so it
travels with the images to any PACS, and announced to the sender, who marks it read.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import Connection, insert, select, update

from rix import audit
from rix.access import EVERYTHING, trail
from rix.access.trail import Touched
from rix.archive import Archive
from rix.errors import AccessDenied, Conflict
from rix.index import queries
from rix.index.database import begin_write
from rix.index.schema import instances, series, studies
from rix.index.workflow_tables import share_opinions
from rix.ingest import sr
from rix.jobs import mail
from rix.sharing.record import Opinion, Share
from rix.sharing.sessions import Session

MAX_OPINION = 20_000


def key_images(conn: Connection, study_uid: str, spec: str) -> list[sr.Reference]:
    """``spec`` names images as people read them off the viewer: ``series/image`` numbers,
    comma-separated (``3/45, 3/50``); each must exist in the study."""
    found: list[sr.Reference] = []
    for part in [p.strip() for p in spec.replace(";", ",").split(",") if p.strip()][:50]:
        series_text, slash, image_text = part.partition("/")
        if not slash or not series_text.strip().isdigit() or not image_text.strip().isdigit():
            raise Conflict(f"{part[:40]!r}: name key images as series/image, e.g. 3/45")
        row = conn.execute(
            select(instances.c.sop_uid, instances.c.sop_class_uid, series.c.series_uid)
            .join(series, series.c.id == instances.c.series_pk)
            .join(studies, studies.c.id == series.c.study_pk)
            .where(
                studies.c.study_uid == study_uid,
                series.c.series_number == int(series_text),
                instances.c.instance_number == int(image_text),
            )
            .limit(1)
        ).first()
        if row is None:
            raise Conflict(f"there is no image {part} in this study")
        found.append(
            sr.Reference(
                sop_class_uid=row.sop_class_uid,
                sop_instance_uid=row.sop_uid,
                series_uid=row.series_uid,
            )
        )
    return found


def add(
    archive: Archive, session: Session, *, study_uid: str, text: str, key_spec: str, source: str
) -> Opinion:
    """Store the recipient's opinion with the study as a Basic Text SR (so it travels with
    the images to any PACS) and tell the sender. The SR is written by rix on the share's
    behalf, not by the share: the recipient's own access stays read-only."""
    share = session.share
    if study_uid not in share.study_uids:
        raise AccessDenied("this study is not part of the share")
    text = text.strip()
    if not text:
        raise Conflict("write your opinion first")
    if len(text) > MAX_OPINION:
        raise Conflict(f"an opinion is at most {MAX_OPINION} characters")
    with archive.engine.connect() as conn:
        images = key_images(conn, study_uid, key_spec)
        document = sr.text_document(
            conn,
            study_uid=study_uid,
            text=text,
            author=share.recipient_name.replace(" ", "^", 1)[:64],
            organisation=f"Second opinion for {share.trust_name}"[:64],
            final=False,
            series_description="Second opinion",
            title=sr.OPINION_TITLE,
            key_images=images,
        )
    sr.store(archive, document, source="share")
    principal = share.principal(source)
    with begin_write(archive.engine) as conn:
        pk = conn.execute(
            insert(share_opinions)
            .values(
                share_pk=share.pk,
                study_uid=study_uid,
                text=text,
                key_images=json.dumps([i.sop_instance_uid for i in images]),
                sr_instance_uid=str(document.SOPInstanceUID),
                created_at=time.time(),
            )
            .returning(share_opinions.c.id)
        ).scalar_one()
        found = queries.patient_of_study(conn, study_uid, scope=EVERYTHING)
        touched = Touched(
            study_uid=study_uid,
            patient="" if found is None else found.ref,
            nhs_number="" if found is None else found.nhs_number,
        )
        detail = {"share": share.pk, "opinion": pk, "key_images": len(images)}
        trail.record_in(conn, principal, audit.Kind.STORE, audit.Outcome.SUCCESS, touched, detail)
        mail.enqueue(
            conn,
            archive.settings,
            to=share.owner_email,
            subject="A second opinion has arrived",
            body=(
                f"Dear {share.owner_name},\n\n{share.recipient_name} has sent their opinion on "
                f"share {share.pk}. Read it in rix under Shares; it is also stored with the "
                "study as a structured report.\n\nrix\n"
            ),
            trust_pk=share.trust_pk,
        )
        row = conn.execute(select(share_opinions).where(share_opinions.c.id == pk)).one()
        return Opinion.from_row(row)


def mark_seen(conn: Connection, share: Share) -> None:
    """The owner has read the share's opinions: the portal's "new opinion" marker goes."""
    conn.execute(
        update(share_opinions)
        .where(share_opinions.c.share_pk == share.pk, share_opinions.c.seen_at.is_(None))
        .values(seen_at=time.time())
    )
