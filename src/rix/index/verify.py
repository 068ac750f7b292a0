"""``rix verify``: re-hash every stored object and compare with the index.

Bit rot, a restored backup of the wrong day, or a hand-edited file all show up here as a
mismatch; objects the index does not know (an unacknowledged store cut short by a crash)
are listed as unindexed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from rix.dataset import parsing
from rix.errors import RixError
from rix.index.schema import instance_conflicts, instances
from rix.store import ObjectMissing, ObjectStore

WORKERS = 4


@dataclass
class VerifyReport:
    checked: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    unindexed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.mismatched or self.missing or self.unreadable)


def dataset_sha256(store: ObjectStore, key: str) -> str:
    """SHA-256 of a stored object's dataset bytes (after the file meta), as the index keeps
    it; used by verify, storage commitment and ingest's crash recovery alike."""
    with store.open(key) as f:
        data = f.read()
    split = parsing.split_file(data)
    return hashlib.sha256(memoryview(data)[split.dataset_offset :]).hexdigest()


def verify(
    engine: Engine, store: ObjectStore, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    with engine.connect() as conn:
        rows = [
            tuple(r)
            for r in conn.execute(
                select(instances.c.sop_uid, instances.c.storage_key, instances.c.sha256)
            )
        ]
        conflict_keys = set(conn.execute(select(instance_conflicts.c.storage_key)).scalars())
    report = VerifyReport()

    def check(row: tuple[str, str, str]) -> tuple[str, str]:
        _sop_uid, key, expected = row
        try:
            return ("ok" if dataset_sha256(store, key) == expected else "mismatch"), ""
        except ObjectMissing:
            return "missing", ""
        except (RixError, OSError, ValueError) as exc:
            return "unreadable", str(exc)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for row, (verdict, detail) in zip(rows, pool.map(check, rows), strict=True):
            report.checked += 1
            if verdict == "mismatch":
                report.mismatched.append(row[1])
            elif verdict == "missing":
                report.missing.append(row[1])
            elif verdict == "unreadable":
                report.unreadable.append((row[1], detail))
            if progress is not None:
                progress(1)
    known = {key for _sop, key, _sha in rows} | conflict_keys
    report.unindexed = [key for key in store.all_keys() if key not in known]
    return report
