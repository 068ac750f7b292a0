"""What "awaiting a report" means: one meaning for the reporting worklist
(``rix.workflow.reporting_worklist``), the turnaround dashboard and its alerts
(``rix.workflow.turnaround``).

A study awaits a report when it holds images (a study of SR, PR, KO or DOC objects only
does not) and no report document was stored in it from elsewhere: a text SR or an
encapsulated PDF from the trust's PACS or from media, that is not a second opinion
(``rix.sharing``), which is advice, not the report. Reports written here are the
versions of ``rix.workflow.report_versions``.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, select

from rix.index.schema import instances, series, studies
from rix.index.workflow_tables import share_opinions

# objects that are about images, not images: a study of these alone is not reported
NOT_IMAGES = ("SR", "PR", "KO", "DOC")
# report documents from elsewhere (PS3.4 B.5): Basic Text, Enhanced and Comprehensive SR,
# Encapsulated PDF; dose reports (X-Ray Radiation Dose SR) are not reports
REPORT_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.88.11",
    "1.2.840.10008.5.1.4.1.1.88.22",
    "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.104.1",
)


def series_where(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """SQL: the study (``studies``, correlated) has a series meeting ``conditions``."""
    return exists(select(series.c.id).where(series.c.study_pk == studies.c.id, *conditions))


def holds_images() -> ColumnElement[bool]:
    """SQL: the study has a series of images, not only objects about images."""
    return series_where(series.c.modality.not_in(NOT_IMAGES))


def image_modalities(modalities: str) -> list[str]:
    """A study's Modalities in Study (``A\\B``) without the objects about images."""
    return [m for m in modalities.split("\\") if m and m not in NOT_IMAGES]


def reported_elsewhere() -> ColumnElement[bool]:
    """SQL: a report document stored in the study (from the trust's PACS, from media), not
    a second opinion."""
    opinions = select(share_opinions.c.sr_instance_uid).where(
        share_opinions.c.sr_instance_uid.is_not(None)
    )
    return exists(
        select(instances.c.id)
        .join(series, series.c.id == instances.c.series_pk)
        .where(
            series.c.study_pk == studies.c.id,
            series.c.modality.in_(("SR", "DOC")),
            instances.c.sop_class_uid.in_(REPORT_CLASSES),
            instances.c.sop_uid.not_in(opinions),
        )
    )
