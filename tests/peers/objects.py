"""rix's object folder seen from outside: which files exist and the dataset bytes they hold."""

from __future__ import annotations

from pathlib import Path

from rix.dataset import parsing


def object_keys(data: Path) -> set[str]:
    """Every file under ``data/objects``, a put's temporary files included: a refused
    instance must leave nothing at all behind."""
    root = data / "objects"
    if not root.exists():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def instance_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"{study_uid}/{series_uid}/{sop_uid}.dcm"


def dataset_of(path: Path) -> tuple[str, bytes]:
    """(transfer syntax, dataset bytes after the file meta) of a Part 10 file."""
    data = path.read_bytes()
    split = parsing.split_file(data)
    return split.transfer_syntax, data[split.dataset_offset :]


def stored(data: Path, key: str) -> tuple[str, bytes]:
    return dataset_of(data / "objects" / key)
