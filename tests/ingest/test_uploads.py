"""Resumable uploads (``rix.uploads``), what outside media hold (``rix.media``) and the
reconciled record carried in a stored file's meta (``rix.ingest.owner_information``)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from rix import ingest
from rix.dataset import parsing
from rix.errors import Conflict, NotFound
from rix.index import records
from rix.ingest import media, uploads
from rix.region.trusts import Trust


def new(base: Path, *sizes: int) -> uploads.Session:
    files = [uploads.Declared(name=f"disc/file{n}", size=s) for n, s in enumerate(sizes)]
    return uploads.create(base, owner="clerk", user_pk=7, trust="EMH", files=files)


def test_chunks_append_only_at_the_received_end(tmp_path: Path) -> None:
    session = new(tmp_path, 10)
    assert uploads.write_chunk(tmp_path, session, number=0, offset=0, data=b"abcd") == 4
    with pytest.raises(Conflict, match="resume at 4"):
        uploads.write_chunk(tmp_path, session, number=0, offset=2, data=b"xx")
    assert uploads.write_chunk(tmp_path, session, number=0, offset=4, data=b"efghij") == 10
    assert uploads.complete(tmp_path, session)
    assert uploads.file_path(tmp_path, session, 0).read_bytes() == b"abcdefghij"


def test_a_short_or_corrupt_chunk_changes_nothing(tmp_path: Path) -> None:
    session = new(tmp_path, 10)
    uploads.write_chunk(tmp_path, session, number=0, offset=0, data=b"abcd")
    with pytest.raises(uploads.ChunkRefused, match="truncated"):
        uploads.write_chunk(tmp_path, session, number=0, offset=4, data=b"ef", length=6)
    wrong = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(uploads.ChunkRefused, match="SHA-256"):
        uploads.write_chunk(tmp_path, session, number=0, offset=4, data=b"ef", sha256=wrong)
    with pytest.raises(uploads.ChunkRefused, match="declared size"):
        uploads.write_chunk(tmp_path, session, number=0, offset=4, data=b"e" * 7)
    assert uploads.received(tmp_path, session) == [4]


def test_a_scanned_upload_takes_no_more_chunks(tmp_path: Path) -> None:
    session = new(tmp_path, 4)
    uploads.transition(
        tmp_path, session.id, (uploads.State.RECEIVING,), state=uploads.State.SCANNED
    )
    with pytest.raises(Conflict, match="scanned"):
        uploads.write_chunk(tmp_path, session, number=0, offset=0, data=b"abcd")


def test_an_upload_is_its_makers_alone(tmp_path: Path) -> None:
    session = new(tmp_path, 4)
    assert uploads.owned(tmp_path, session.id, owner="clerk", user_pk=7) == session
    with pytest.raises(NotFound):
        uploads.owned(tmp_path, session.id, owner="someone", user_pk=8)
    with pytest.raises(NotFound):
        uploads.load(tmp_path, "../../etc")


def test_uploads_unchanged_past_their_expiry_are_swept(tmp_path: Path) -> None:
    old, fresh = new(tmp_path, 1), new(tmp_path, 1)
    meta = tmp_path / old.id / "session.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "updated_at": 0.0}))
    assert uploads.sweep(tmp_path, hours=1) == [old.id]
    assert not (tmp_path / old.id).exists()
    assert uploads.load(tmp_path, fresh.id).id == fresh.id


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def test_zip_members_that_climb_out_are_refused_and_broken_zips_named(tmp_path: Path) -> None:
    good = tmp_path / "good.zip"
    good.write_bytes(_zip({"a/IM1": b"x", "../../etc/passwd": b"y", "/abs": b"z"}))
    broken = tmp_path / "broken.zip"
    broken.write_bytes(_zip({"IM1": b"x" * 100})[:60])
    plain = tmp_path / "IM2"
    plain.write_bytes(b"not a zip")
    found = list(media.items([("good.zip", good), ("broken.zip", broken), ("IM2", plain)]))
    by_label = {i.label: i.refused for i in found}
    assert by_label["good.zip!a/IM1"] == ""
    assert "unsafe path" in by_label["good.zip!../../etc/passwd"]
    assert "unsafe path" in by_label["good.zip!/abs"]
    assert by_label["IM2"] == ""
    assert [i for i in found if i.file == 1 and "broken zip" in i.refused]


def test_the_reconciled_record_survives_in_the_file_meta() -> None:
    trust = Trust(pk=1, code="EMH", name="East", issuer="EMH-MRN")
    chosen = records.Reconciled(
        patient_id="EMH 10/02",
        issuer="EMH-MRN",
        name="Hart^Ada=ハート",
        birth_date="19700101",
        sex="F",
        nhs_number="9434765919",
        upload="0" * 32,
        by="emh.clerk",
        at=1767225600.25,
    )
    private = ingest.owner_information(trust, chosen)
    meta = parsing.file_meta(
        sop_class_uid="1.2.3",
        sop_instance_uid="1.2.3.4",
        transfer_syntax="1.2.840.10008.1.2.1",
        source_ae="",
        private=private,
    )
    split = parsing.split_file(meta + b"\x08\x00\x05\x00CS\x00\x00")
    read_back = parsing.private_information(split.meta)
    assert ingest.owner_code(read_back) == "EMH"
    assert ingest.reconciled_in(read_back) == chosen
    assert ingest.owner_code(b"trust=NGH") == "NGH"  # files stored before reconciliation
    assert ingest.reconciled_in(b"trust=NGH") is None
