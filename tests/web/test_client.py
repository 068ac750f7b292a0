"""Every DICOMweb route through a real client, dicomweb-client (PS3.18 10.4 to 10.6, 9).

The study of ``conftest.study`` was stored by the client's STOW-RS; each test reads it
back the way a viewer or a research pipeline would.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import httpx
import numpy as np
import pytest
from dicomweb_client import DICOMwebClient
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)
from requests import HTTPError

from tests.peers import images
from tests.peers.dicomweb import BOUNDARY, after_file_meta, multipart, part10
from tests.web.conftest import StoredStudy

STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"
PATIENT_NAME, MODALITY, RETRIEVE_URL = "00100010", "00080060", "00081190"


def values(results: list[dict[str, Any]], tag: str) -> list[Any]:
    return [r[tag]["Value"][0] for r in results if "Value" in r.get(tag, {})]


def dataset_bytes(ds: Dataset) -> bytes:
    return after_file_meta(part10(ds))


# STOW-RS (PS3.18 10.5)


def test_stow_answers_a_retrieve_url_for_every_instance(client: DICOMwebClient) -> None:
    study_uid, series_uid = images.fresh_uids()
    slices = [
        images.ct(
            patient_id="WEB-STOW-1",
            name="Stow^Plain",
            study_uid=study_uid,
            series_uid=series_uid,
            number=n,
        )
        for n in (1, 2, 3)
    ]
    answer = client.store_instances(slices)
    refs = answer.ReferencedSOPSequence
    assert [r.ReferencedSOPInstanceUID for r in refs] == [ds.SOPInstanceUID for ds in slices]
    for ref, ds in zip(refs, slices, strict=True):
        assert ref.ReferencedSOPClassUID == ds.SOPClassUID
        assert ref.RetrieveURL.endswith(
            f"/studies/{study_uid}/series/{series_uid}/instances/{ds.SOPInstanceUID}"
        )


def test_stow_of_identical_instances_again_is_a_plain_success(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    answer = client.store_instances(list(study.ct))
    refs = answer.ReferencedSOPSequence
    assert [r.ReferencedSOPInstanceUID for r in refs] == [ds.SOPInstanceUID for ds in study.ct]
    assert all("WarningReason" not in r for r in refs)
    assert "FailedSOPSequence" not in answer


def test_stow_to_a_study_url_stores_that_studys_instances(client: DICOMwebClient) -> None:
    study_uid, series_uid = images.fresh_uids()
    slices = [
        images.ct(
            patient_id="WEB-STOW-2",
            name="Stow^Study",
            study_uid=study_uid,
            series_uid=series_uid,
            number=n,
        )
        for n in (1, 2)
    ]
    answer = client.store_instances(slices, study_instance_uid=study_uid)
    assert len(answer.ReferencedSOPSequence) == 2
    assert answer.RetrieveURL.endswith(f"/studies/{study_uid}")
    found = client.search_for_instances(study_instance_uid=study_uid)
    assert sorted(values(found, SOP_UID)) == sorted(ds.SOPInstanceUID for ds in slices)


# QIDO-RS (PS3.18 10.6)


def test_search_for_studies_finds_the_study_by_patient_id(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    found = client.search_for_studies(search_filters={"PatientID": study.patient_id})
    assert values(found, STUDY_UID) == [study.study_uid]
    assert found[0]["00201208"]["Value"] == [len(study.instances)]  # Number of Instances
    assert found[0][PATIENT_NAME]["Value"] == [{"Alphabetic": study.patient_name}]


def test_search_for_series_of_a_study_lists_both_series(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    found = client.search_for_series(study_instance_uid=study.study_uid)
    assert sorted(values(found, SERIES_UID)) == sorted([study.ct_series, study.mf_series])
    assert sorted(values(found, MODALITY)) == ["CT", "OT"]


def test_search_for_series_of_all_studies_matches_modality(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    found = client.search_for_series(
        search_filters={"Modality": "OT", "PatientID": study.patient_id}
    )
    assert values(found, SERIES_UID) == [study.mf_series]


def test_search_for_instances_of_a_series_lists_its_instances(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    found = client.search_for_instances(
        study_instance_uid=study.study_uid, series_instance_uid=study.ct_series
    )
    assert sorted(values(found, SOP_UID)) == sorted(ds.SOPInstanceUID for ds in study.ct)


def test_search_for_instances_of_a_study_lists_every_instance(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    found = client.search_for_instances(study_instance_uid=study.study_uid)
    assert sorted(values(found, SOP_UID)) == sorted(ds.SOPInstanceUID for ds in study.instances)
    frames = {r[SOP_UID]["Value"][0]: r.get("00280008", {}).get("Value") for r in found}
    assert frames[study.native.SOPInstanceUID] == [4]


def test_search_for_instances_of_all_studies_matches_a_sop_instance_uid(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    wanted = study.compressed.SOPInstanceUID
    found = client.search_for_instances(search_filters={"SOPInstanceUID": wanted})
    assert values(found, SOP_UID) == [wanted]
    assert values(found, STUDY_UID) == [study.study_uid]  # study attributes come along


def test_retrieve_urls_in_search_results_lead_to_the_resource(
    client: DICOMwebClient, study: StoredStudy, http: httpx.Client
) -> None:
    (found,) = client.search_for_studies(search_filters={"PatientID": study.patient_id})
    url = found[RETRIEVE_URL]["Value"][0]
    assert url.endswith(f"/dicomweb/studies/{study.study_uid}")
    response = http.get(url + "/metadata")
    assert response.status_code == 200
    assert len(response.json()) == len(study.instances)


def test_includefield_adds_the_named_attribute(client: DICOMwebClient, study: StoredStudy) -> None:
    plain = client.search_for_studies(search_filters={"PatientID": study.patient_id})
    more = client.search_for_studies(
        search_filters={"PatientID": study.patient_id}, fields=["PatientAge", "00081030"]
    )
    assert "00101010" not in plain[0]
    assert {"00101010", "00081030"} <= more[0].keys()


def test_includefield_all_returns_every_series_attribute(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    plain = client.search_for_series(study_instance_uid=study.study_uid)
    everything = client.search_for_series(study_instance_uid=study.study_uid, fields=["all"])
    assert plain[0].keys() < everything[0].keys()
    assert "00080021" in everything[0]  # Series Date, not a default attribute


def test_fuzzymatching_matches_any_name_component_case_blind(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    exact = client.search_for_studies(search_filters={"PatientName": "ada"})
    fuzzy = client.search_for_studies(search_filters={"PatientName": "ada"}, fuzzymatching=True)
    assert study.study_uid not in values(exact, STUDY_UID)
    assert study.study_uid in values(fuzzy, STUDY_UID)


def test_limit_and_offset_page_through_the_results(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    pages = [
        client.search_for_instances(study_instance_uid=study.study_uid, limit=2, offset=offset)
        for offset in (0, 2, 4, 6)
    ]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    seen = [uid for page in pages for uid in values(page, SOP_UID)]
    assert sorted(seen) == sorted(ds.SOPInstanceUID for ds in study.instances)


def test_limit_above_the_cap_is_answered_with_a_warning_header(
    client: DICOMwebClient, study: StoredStudy, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="dicomweb_client"):
        found = client.search_for_studies(
            search_filters={"PatientID": study.patient_id}, limit=5000
        )
    assert values(found, STUDY_UID) == [study.study_uid]
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("dicomweb_client")]
    assert any(w.startswith("299 ") and "1000" in w for w in warnings), warnings


# WADO-RS (PS3.18 10.4)


def test_retrieve_study_returns_every_instance(client: DICOMwebClient, study: StoredStudy) -> None:
    got = client.retrieve_study(study.study_uid)
    assert sorted(ds.SOPInstanceUID for ds in got) == sorted(
        ds.SOPInstanceUID for ds in study.instances
    )


def test_retrieve_series_returns_only_that_series(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    got = client.retrieve_series(study.study_uid, study.ct_series)
    assert sorted(ds.SOPInstanceUID for ds in got) == sorted(ds.SOPInstanceUID for ds in study.ct)


def test_retrieve_instance_returns_the_stored_dataset_bytes(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.ct[0]
    got = client.retrieve_instance(study.study_uid, study.ct_series, ds.SOPInstanceUID)
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert dataset_bytes(got) == dataset_bytes(ds)


def test_retrieve_instance_in_implicit_vr_when_asked(
    http: httpx.Client, study: StoredStudy
) -> None:
    # dicomweb-client offers only Explicit VR Little Endian and "*" for application/dicom
    ds = study.ct[2]
    accept = f"application/dicom; transfer-syntax={ImplicitVRLittleEndian}"
    response = http.get(study.path(ds), headers={"Accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == accept
    got = dcmread(io.BytesIO(response.content))
    assert got.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert got.PixelData == ds.PixelData
    assert got.PatientName == ds.PatientName


def test_transfer_syntax_star_returns_the_instance_as_stored(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.compressed
    got = client.retrieve_instance(
        study.study_uid,
        study.mf_series,
        ds.SOPInstanceUID,
        media_types=(("application/dicom", "*"),),
    )
    assert got.file_meta.TransferSyntaxUID == RLELossless
    assert dataset_bytes(got) == dataset_bytes(ds)


def test_explicit_vr_little_endian_asked_of_a_compressed_instance_is_decompressed(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.compressed
    got = client.retrieve_instance(
        study.study_uid,
        study.mf_series,
        ds.SOPInstanceUID,
        media_types=(("application/dicom", ExplicitVRLittleEndian),),
    )
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert got.SOPInstanceUID == ds.SOPInstanceUID  # lossless: the same instance
    assert np.array_equal(got.pixel_array, ds.pixel_array)


def test_no_transfer_syntax_parameter_means_explicit_vr_little_endian(
    http: httpx.Client, study: StoredStudy
) -> None:
    # PS3.18 8.7.3.5.2; dicomweb-client itself always sends transfer-syntax=*
    response = http.get(study.path(study.compressed), headers={"Accept": "application/dicom"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == (
        f"application/dicom; transfer-syntax={ExplicitVRLittleEndian}"
    )
    got = dcmread(io.BytesIO(response.content))
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(got.pixel_array, study.compressed.pixel_array)


def test_retrieve_study_metadata_has_every_instance(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    metadata = client.retrieve_study_metadata(study.study_uid)
    assert sorted(values(metadata, SOP_UID)) == sorted(ds.SOPInstanceUID for ds in study.instances)


def test_retrieve_series_metadata_has_only_that_series(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    metadata = client.retrieve_series_metadata(study.study_uid, study.mf_series)
    assert sorted(values(metadata, SOP_UID)) == sorted(
        [study.native.SOPInstanceUID, study.compressed.SOPInstanceUID]
    )


def test_retrieve_instance_metadata_is_the_datasets_dicom_json(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.ct[2]
    metadata = client.retrieve_instance_metadata(
        study.study_uid, study.ct_series, ds.SOPInstanceUID
    )
    expected = ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=lambda e: "")
    assert metadata.keys() == expected.keys()
    bulk = {tag for tag, value in expected.items() if "BulkDataURI" in value}
    assert bulk == {"7FE00010"}
    assert {t: v for t, v in metadata.items() if t not in bulk} == {
        t: v for t, v in expected.items() if t not in bulk
    }


def test_retrieve_a_single_frame_of_a_native_instance(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.native
    (frame,) = client.retrieve_instance_frames(
        study.study_uid, study.mf_series, ds.SOPInstanceUID, frame_numbers=[3]
    )
    assert frame == ds.pixel_array[2].tobytes()


def test_retrieve_a_list_of_frames_in_the_order_asked(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.native
    got = client.retrieve_instance_frames(
        study.study_uid, study.mf_series, ds.SOPInstanceUID, frame_numbers=[4, 1, 2]
    )
    assert got == [ds.pixel_array[k].tobytes() for k in (3, 0, 1)]


def test_retrieve_compressed_frames_as_stored(client: DICOMwebClient, study: StoredStudy) -> None:
    ds = study.compressed
    got = client.retrieve_instance_frames(
        study.study_uid,
        study.mf_series,
        ds.SOPInstanceUID,
        frame_numbers=[1, 3],
        media_types=(("image/dicom-rle", RLELossless),),
    )
    stored = list(generate_frames(ds.PixelData, number_of_frames=3))
    assert got == [stored[0], stored[2]]


def test_retrieve_compressed_frames_decoded_on_request(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.compressed
    got = client.retrieve_instance_frames(
        study.study_uid,
        study.mf_series,
        ds.SOPInstanceUID,
        frame_numbers=[2],
        media_types=(("application/octet-stream", ExplicitVRLittleEndian),),
    )
    assert got == [ds.pixel_array[1].astype("<u2").tobytes()]


def test_bulk_data_uri_in_metadata_retrieves_the_overlay(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.ct[0]
    metadata = client.retrieve_instance_metadata(
        study.study_uid, study.ct_series, ds.SOPInstanceUID
    )
    uri = metadata["60003000"]["BulkDataURI"]
    assert client.retrieve_bulkdata(uri) == [ds[0x60003000].value]


def test_bulk_data_uri_inside_a_sequence_retrieves_that_items_value(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.ct[1]
    metadata = client.retrieve_instance_metadata(
        study.study_uid, study.ct_series, ds.SOPInstanceUID
    )
    (icon,) = metadata["00880200"]["Value"]
    uri = icon["7FE00010"]["BulkDataURI"]
    assert client.retrieve_bulkdata(uri) == [ds.IconImageSequence[0].PixelData]


def test_pixel_data_bulk_data_uri_retrieves_every_frame(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.native
    metadata = client.retrieve_instance_metadata(
        study.study_uid, study.mf_series, ds.SOPInstanceUID
    )
    uri = metadata["7FE00010"]["BulkDataURI"]
    assert b"".join(client.retrieve_bulkdata(uri)) == ds.PixelData


def test_retrieve_instance_rendered_as_png_with_a_window(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.ct[0]
    png = client.retrieve_instance_rendered(
        study.study_uid,
        study.ct_series,
        ds.SOPInstanceUID,
        media_types=("image/png",),
        params={"window": "0,2000"},
    )
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.mode, image.size) == ("PNG", "L", (64, 64))
    pixels = np.asarray(image)
    assert pixels.min() < 64 and pixels.max() > 192  # the ramp crosses the window


def test_rendered_viewport_fits_the_image_in_the_box(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.ct[0]
    jpeg = client.retrieve_instance_rendered(
        study.study_uid,
        study.ct_series,
        ds.SOPInstanceUID,
        media_types=("image/jpeg",),
        params={"viewport": "32,16", "quality": "50"},
    )
    image = Image.open(io.BytesIO(jpeg))
    assert (image.format, image.size) == ("JPEG", (16, 16))


def test_rendered_quality_changes_the_jpeg(client: DICOMwebClient, study: StoredStudy) -> None:
    ds = study.ct[0]

    def at(quality: int) -> bytes:
        return client.retrieve_instance_rendered(
            study.study_uid,
            study.ct_series,
            ds.SOPInstanceUID,
            media_types=("image/jpeg",),
            params={"quality": str(quality)},
        )

    assert len(at(5)) < len(at(95))


def test_retrieve_frames_rendered_shows_the_frame_asked(
    client: DICOMwebClient, study: StoredStudy
) -> None:
    ds = study.native
    for number in (1, 4):
        png = client.retrieve_instance_frames_rendered(
            study.study_uid,
            study.mf_series,
            ds.SOPInstanceUID,
            frame_numbers=[number],
            media_types=("image/png",),
            params={"window": "127.5,256,linear_exact"},
        )
        pixels = np.asarray(Image.open(io.BytesIO(png)))
        assert np.abs(pixels.astype(int) - ds.pixel_array[number - 1]).max() <= 1


@pytest.mark.parametrize("level", ["study", "series", "instance"])
def test_thumbnail_is_a_small_jpeg(http: httpx.Client, study: StoredStudy, level: str) -> None:
    path = {
        "study": f"/studies/{study.study_uid}",
        "series": f"/studies/{study.study_uid}/series/{study.ct_series}",
        "instance": study.path(study.ct[1]),
    }[level]
    response = http.get(path + "/thumbnail", headers={"Accept": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "JPEG"
    assert max(image.size) <= 128


def test_study_thumbnail_passes_over_an_instance_without_pixels(
    client: DICOMwebClient, http: httpx.Client
) -> None:
    """The middle instance of CT, SR, CT is the report: the thumbnail is a CT's."""
    study_uid = generate_uid()
    first, report, last = (
        images.ct(
            patient_id="WEB-THUMB-1",
            name="Thumb^Nail",
            study_uid=study_uid,
            series_uid=generate_uid(),
            number=1,
        )
        for _ in range(3)
    )
    for number, ds in enumerate((first, report, last), 1):
        ds.SeriesNumber = number
    report.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    report.Modality = "SR"
    del report.PixelData
    client.store_instances([first, report, last])
    response = http.get(f"/studies/{study_uid}/thumbnail", headers={"Accept": "image/png"})
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == (64, 64)


# WADO-URI (PS3.18 9)


def wado_uri(http: httpx.Client, study: StoredStudy, content_type: str) -> httpx.Response:
    ds = study.ct[0]
    params = {
        "requestType": "WADO",
        "studyUID": study.study_uid,
        "seriesUID": study.ct_series,
        "objectUID": ds.SOPInstanceUID,
        "contentType": content_type,
    }
    origin = str(http.base_url).removesuffix("/").removesuffix("/dicomweb")
    return httpx.get(origin + "/wado", params=params, timeout=30, headers=http.headers)


def test_wado_uri_returns_the_instance_as_application_dicom(
    http: httpx.Client, study: StoredStudy
) -> None:
    response = wado_uri(http, study, "application/dicom")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom"
    assert after_file_meta(response.content) == dataset_bytes(study.ct[0])
    assert dcmread(io.BytesIO(response.content)).SOPInstanceUID == study.ct[0].SOPInstanceUID


def test_wado_uri_renders_a_jpeg(http: httpx.Client, study: StoredStudy) -> None:
    response = wado_uri(http, study, "image/jpeg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (64, 64)


def test_unknown_study_is_404_through_the_client(client: DICOMwebClient) -> None:
    with pytest.raises(HTTPError) as raised:
        client.retrieve_study(generate_uid())
    assert raised.value.response.status_code == 404


def test_stow_of_dicom_json_with_its_bulk_data_stores_the_instance(
    http: httpx.Client,
) -> None:
    """PS3.18 10.5.1.2: a DICOM JSON part and a bulk data part named by Content-Location."""
    study_uid, series_uid = images.fresh_uids()
    ds = images.ct(
        patient_id="WEB-JSON-1",
        name="Json^Stow",
        study_uid=study_uid,
        series_uid=series_uid,
        number=1,
    )
    document = ds.to_json_dict(1024, lambda _e: "pixels/1")
    body = multipart(
        [
            ({"Content-Type": "application/dicom+json"}, json.dumps([document]).encode()),
            (
                {"Content-Type": "application/octet-stream", "Content-Location": "pixels/1"},
                ds.PixelData,
            ),
        ]
    )
    content_type = f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}'
    response = http.post(
        f"/studies/{study_uid}", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text
    path = f"/studies/{study_uid}/series/{series_uid}/instances/{ds.SOPInstanceUID}"
    got = dcmread(io.BytesIO(http.get(path, headers={"Accept": "application/dicom"}).content))
    assert got.PixelData == ds.PixelData
    assert got.PatientName == ds.PatientName


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-50", -50, None)],
)
def test_bulk_data_range_returns_that_slice_with_206(
    client: DICOMwebClient,
    http: httpx.Client,
    study: StoredStudy,
    header: str,
    first: int,
    last: int | None,
) -> None:
    ds = study.ct[0]
    metadata = client.retrieve_instance_metadata(
        study.study_uid, study.ct_series, ds.SOPInstanceUID
    )
    uri = metadata["60003000"]["BulkDataURI"]
    path = uri.split("/dicomweb", 1)[1]
    value = ds[0x60003000].value
    response = http.get(path, headers={"Accept": "application/octet-stream", "Range": header})
    assert response.status_code == 206
    expected = value[first : None if last is None else last + 1]
    assert response.content == expected
    start = first % len(value)
    assert (
        response.headers["content-range"]
        == f"bytes {start}-{start + len(expected) - 1}/{len(value)}"
    )


def test_bulk_data_range_outside_the_value_is_416(
    client: DICOMwebClient, http: httpx.Client, study: StoredStudy
) -> None:
    ds = study.ct[0]
    metadata = client.retrieve_instance_metadata(
        study.study_uid, study.ct_series, ds.SOPInstanceUID
    )
    path = metadata["60003000"]["BulkDataURI"].split("/dicomweb", 1)[1]
    response = http.get(
        path, headers={"Accept": "application/octet-stream", "Range": "bytes=99999999-"}
    )
    assert response.status_code == 416
    assert "outside" in response.json()["error"]
