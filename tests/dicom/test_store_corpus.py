"""C-STORE of every file in pydicom's corpus (PS3.4 Annex B), from real outside peers.

DCMTK storescu sends the files in uncompressed syntaxes, pynetdicom sends the rest as
their exact bytes (compressed, deflated, and files DCMTK will not send). Files that
cannot be archived get a failure status with a reason and leave nothing behind; the
same SOP Instance UID sent again with other bytes answers warning 0xB000 and the first
copy stays current (the default ``keep-first`` policy).
"""

from __future__ import annotations

import hashlib

import pytest

from tests.dicom.corpus_store import (
    CANNOT_UNDERSTAND,
    SUCCESS,
    WARNING_COERCION,
    CorpusStore,
    Sent,
    expected,
    refusal,
)
from tests.peers import corpus, scu
from tests.peers.objects import instance_key, stored
from tests.peers.server import RixServer

DEFLATED = "1.2.840.10008.1.2.1.99"


def refused(store: CorpusStore, reason: str) -> list[Sent]:
    return [s for s in store.sent if refusal(s.file) == reason]


def test_every_readable_corpus_file_is_sent_and_answered(corpus_store: CorpusStore) -> None:
    names = {s.name for s in corpus_store.sent}
    assert names == {f.name for f in corpus.readable()}
    assert len(names) > 150
    assert all(s.status is not None for s in corpus_store.sent)
    assert sum(s.sender == "storescu" for s in corpus_store.sent) > 90


def test_files_pydicom_cannot_read_are_left_out_of_the_corpus() -> None:
    left_out = {corpus.name_of(p) for p in corpus.unreadable()}
    assert "test_files/README.txt" in left_out
    assert "test_files/no_meta.dcm" in left_out  # a stray byte before its first element
    assert "test_files/rtstruct.dcm" not in left_out  # a data set without file meta


def test_corpus_files_rix_can_archive_are_stored(corpus_store: CorpusStore) -> None:
    want = expected(corpus_store.sent)
    answers = {s.name: s.status for s in corpus_store.sent if not refusal(s.file)}
    assert answers == {name: want[name].status for name in answers}
    assert sum(status == SUCCESS for status in answers.values()) > 120


@pytest.mark.parametrize(
    ("reason", "at_least"),
    [
        ("SOPClassUID is missing", 15),
        ("StudyInstanceUID is missing", 4),
        ("truncated", 2),
        ("not explicit VR", 1),
    ],
    ids=["no-sop-class", "no-study-uid", "truncated", "not-in-its-syntax"],
)
def test_corpus_files_that_cannot_be_archived_are_refused_with_a_reason(
    corpus_store: CorpusStore, reason: str, at_least: int
) -> None:
    files = refused(corpus_store, reason)
    assert len(files) >= at_least
    for s in files:
        assert s.status == CANNOT_UNDERSTAND, s.name
        assert reason in s.error_comment, (s.name, s.error_comment)


def test_same_instance_with_other_bytes_answers_warning_b000(
    corpus_store: CorpusStore,
) -> None:
    want = expected(corpus_store.sent)
    warned = [s for s in corpus_store.sent if want[s.name].status == WARNING_COERCION]
    assert len(warned) >= 20  # MR_small in 8 syntaxes, rtdose in 6, ...
    for s in warned:
        assert s.status == WARNING_COERCION, s.name
        assert s.error_comment, s.name


def test_duplicate_warning_comment_says_why(corpus_store: CorpusStore) -> None:
    warned = [s for s in corpus_store.sent if s.status == WARNING_COERCION]
    assert warned
    assert all("already stored" in s.error_comment for s in warned)


def test_first_copy_stays_current_and_holds_the_bytes_sent(
    corpus_store: CorpusStore, rix_server: RixServer
) -> None:
    kept = {e.first.name: e.first for e in expected(corpus_store.sent).values() if e.first}
    assert len(kept) > 100
    for s in kept.values():
        f = s.file
        syntax, dataset = stored(
            rix_server.data, instance_key(f.study_uid, f.series_uid, f.sop_instance_uid)
        )
        assert (syntax, dataset == s.archived) == (f.transfer_syntax, True), s.name


def test_objects_folder_gains_only_stored_instances_and_kept_conflicts(
    corpus_store: CorpusStore,
) -> None:
    """Refused files leave no file behind; a different later copy is kept for review."""
    want = expected(corpus_store.sent)
    keys = set()
    for s in corpus_store.sent:
        e = want[s.name]
        if e.first is s:
            keys.add(instance_key(s.file.study_uid, s.file.series_uid, s.file.sop_instance_uid))
        elif e.status == WARNING_COERCION:
            sha = hashlib.sha256(s.archived).hexdigest()
            keys.add(f"conflicts/{s.file.sop_instance_uid}/{sha}.dcm")
    assert corpus_store.new_objects == keys


def test_cfind_lists_each_stored_instance_once_and_no_refused_one(
    corpus_store: CorpusStore, rix_server: RixServer
) -> None:
    stored_uids = {s.file.sop_instance_uid for s in corpus_store.sent if not refusal(s.file)}
    refused_uids = {
        s.file.sop_instance_uid
        for s in corpus_store.sent
        if refusal(s.file)
        and s.file.sop_instance_uid
        and s.file.sop_instance_uid not in stored_uids
    }
    assert len(refused_uids) >= 4  # the JPEG-LS files without a Study Instance UID
    asked = sorted(stored_uids | refused_uids)
    result = scu.find(
        rix_server.dicom_port,
        scu.query("IMAGE", SOPInstanceUID=asked, StudyInstanceUID="", SOPClassUID=""),
    )
    assert result.status == SUCCESS, result.error_comment
    found = [str(ds.SOPInstanceUID) for ds in result.matches]
    assert sorted(found) == sorted(stored_uids)


def test_deflated_dataset_of_odd_length_is_stored_with_its_pad(
    corpus_store: CorpusStore, rix_server: RixServer
) -> None:
    s = corpus_store.by_name()["test_files/image_dfl.dcm"]
    f = s.file
    assert (s.status, f.transfer_syntax, len(s.dataset) % 2) == (SUCCESS, DEFLATED, 1)
    key = instance_key(f.study_uid, f.series_uid, f.sop_instance_uid)
    assert stored(rix_server.data, key) == (DEFLATED, s.dataset + b"\x00")
