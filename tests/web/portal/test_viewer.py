"""The stock OHIF viewer served by rix under /viewer/ (issue 5, item 4): it draws a stored
study for a signed-in user from rix's own DICOMweb, sends nobody anywhere but this
origin, and is served as OHIF needs (sub-path, wasm, caching, CSP)."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route
from pydicom.encaps import generate_frames
from pydicom.uid import JPEG2000Lossless, generate_uid
from typer.testing import CliRunner

from rix.cli.main import app
from rix.cli.viewer import HTMX, OHIF, Package
from rix.web import viewer
from tests.peers import browser, dicomweb
from tests.peers.server import RixServer
from tests.web.portal.conftest import PASSWORD, USERNAME, Portal, Region, phantom


@pytest.fixture(scope="module")
def http(portal: Portal) -> Iterator[httpx.Client]:
    """A signed-in HTTP client: the session cookie set by POST /login."""
    with httpx.Client(base_url=portal.origin, timeout=30) as client:
        answer = client.post("/login", data={"username": USERNAME, "password": PASSWORD})
        assert answer.status_code == 303
        yield client


def open_study(page: Page, portal: Portal, watch: browser.Watch) -> float:
    """Seconds from navigation to the first drawn image of the study."""
    start = time.monotonic()
    page.goto(f"{portal.origin}/viewer/viewer?StudyInstanceUIDs={portal.study_uid}")
    browser.wait_for_image(page, watch=watch)
    return time.monotonic() - start


def test_signed_in_user_sees_the_study_drawn_with_no_request_leaving_the_machine(
    signed_in: BrowserContext, portal: Portal
) -> None:
    page = signed_in.new_page()
    watch = browser.Watch().attach(page)
    cold = open_study(page, portal, watch)
    browser.screenshot(page, "viewer-ct")
    again = signed_in.new_page()
    watch.attach(again)
    warm = open_study(again, portal, watch)
    timings = {"cold_first_image_s": round(cold, 2), "warm_first_image_s": round(warm, 2)}
    (browser.ARTIFACTS / "viewer-timings.json").write_text(json.dumps(timings) + "\n")
    assert {urlsplit(url).hostname for url in watch.requests} == {"127.0.0.1"}
    assert watch.hosts() == {urlsplit(portal.origin).netloc}
    assert any("/dicomweb/" in url and "/frames/" in url for url in watch.requests)
    assert watch.errors == []
    assert watch.failed == []


def test_what_the_viewer_reads_is_found_by_the_patients_nhs_number(
    signed_in: BrowserContext, portal: Portal, region: Region
) -> None:
    admin = {"Authorization": f"Bearer {region.admin_token}"}
    params = {"nhs_number": region.rita_nhs, "user": USERNAME}
    with httpx.Client(base_url=portal.origin, headers=admin, timeout=60) as auditor:
        mark = max([e["id"] for e in auditor.get("/api/audit", params=params).json()] or [0])
        page = signed_in.new_page()
        page.goto(f"{portal.origin}/viewer/viewer?StudyInstanceUIDs={region.rita_test_study}")
        browser.wait_for_image(page)
        found = auditor.get("/api/audit", params=params).json()
    # OHIF's queries (the study browser's, by the regional mount) name her, and its
    # metadata and frames are her study's view (one per user and study in five minutes)
    assert any(e["kind"] == "query" and e["id"] > mark for e in found)
    views = {e["study_uid"] for e in found if (e["kind"], e["outcome"]) == ("view", "success")}
    assert region.rita_test_study in views


@pytest.fixture(scope="module")
def compressed(portal: Portal) -> tuple[str, dict[str, bytes]]:
    """A study stored as JPEG 2000 (as a modality might send it) and its codestreams."""
    study_uid, series_uid = generate_uid(), generate_uid()
    codestreams, files = {}, []
    for number in range(1, 5):
        ds = phantom(
            patient_id="PORTAL-2",
            name="Portal^Jay",
            study_uid=study_uid,
            series_uid=series_uid,
            number=number,
        )
        ds.compress(JPEG2000Lossless)
        codestreams[str(ds.SOPInstanceUID)] = next(generate_frames(ds.PixelData))
        files.append(dicomweb.part10(ds))
    with httpx.Client(base_url=portal.origin + "/dicomweb", headers=portal.server.auth) as c:
        assert dicomweb.stow(c, files).status_code == 200
    return study_uid, codestreams


def test_the_policy_lets_ohif_decode_compressed_frames_in_its_workers(
    signed_in: BrowserContext, portal: Portal, compressed: tuple[str, dict[str, bytes]]
) -> None:
    """OHIF asks frames with ``transfer-syntax=*`` and decodes what it gets in wasm
    workers. rix answers decoded Explicit VR Little Endian today, so the stored
    codestream (what a server may answer to ``*``, PS3.18 8.7.3.5) is put in its place:
    this checks the policy, not rix's choice of answer."""
    study_uid, codestreams = compressed

    def as_stored(route: Route) -> None:
        sop = route.request.url.split("/instances/")[1].split("/")[0]
        part = f"Content-Type: application/octet-stream; transfer-syntax={JPEG2000Lossless}"
        body = b"--B\r\n" + part.encode() + b"\r\n\r\n" + codestreams[sop] + b"\r\n--B--\r\n"
        kind = 'multipart/related; type="application/octet-stream"; boundary=B'
        route.fulfill(status=200, body=body, headers={"Content-Type": kind})

    page = signed_in.new_page()
    watch = browser.Watch().attach(page)
    page.route("**/frames/1", as_stored)
    page.goto(f"{portal.origin}/viewer/viewer?StudyInstanceUIDs={study_uid}")
    browser.wait_for_image(page, watch=watch)
    assert any(url.endswith(".wasm") for url in watch.requests)
    assert watch.errors == []


def test_viewer_without_a_session_sends_the_browser_to_sign_in_and_back(
    chromium: Browser, portal: Portal
) -> None:
    context = chromium.new_context()
    try:
        page = context.new_page()
        wanted = f"/viewer/viewer?StudyInstanceUIDs={portal.study_uid}"
        page.goto(portal.origin + wanted)
        assert page.url == f"{portal.origin}/login?next={quote(wanted, safe='')}"
        page.fill("input[name=username]", USERNAME)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(portal.origin + wanted)  # the viewer itself: see the test above
    finally:
        context.close()


def test_the_viewers_way_back_leads_to_the_portal_page_that_opened_it(
    signed_in: BrowserContext, portal: Portal
) -> None:
    """OHIF's header arrow leads to OHIF's own study list; rix turns that list off (the
    arrow goes with it) and the header's logo links back to the portal page the viewer
    was opened from (issue 24, item 10)."""
    page = signed_in.new_page()
    watch = browser.Watch().attach(page)
    study_page = f"{portal.origin}/studies/{portal.study_uid}"
    page.goto(study_page)
    page.locator("a.open-viewer").click()
    page.wait_for_url(f"{portal.origin}/viewer/viewer?StudyInstanceUIDs={portal.study_uid}")
    back = page.locator("[data-cy=rix-return]")
    back.wait_for(timeout=30_000)
    assert back.get_attribute("href") == f"/studies/{portal.study_uid}"
    assert page.locator("[data-cy=return-to-work-list] svg").count() == 0  # no arrow
    back.click()
    page.wait_for_url(study_page)
    page.get_by_role("link", name="timeline").click()  # the study page links the timeline
    page.wait_for_url(f"{portal.origin}/timeline?*")
    timeline = page.url
    page.locator(f"a.open-viewer[href$='{portal.study_uid}']").click()
    page.locator("[data-cy=rix-return]").click(timeout=30_000)
    page.wait_for_url(timeline)
    assert watch.errors == []
    assert watch.hosts() == {urlsplit(portal.origin).netloc}  # nothing left the machine


def test_app_config_is_generated_for_this_origin_and_never_cached(http: httpx.Client) -> None:
    answer = http.get("/viewer/app-config.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.headers["cache-control"] == "no-store"
    assert answer.text == viewer.APP_CONFIG
    assert "wadoRoot: window.location.origin + '/dicomweb'," in answer.text
    assert "qidoRoot: window.location.origin + '/dicomweb/regional'," in answer.text
    assert "routerBasename: '/viewer'" in answer.text
    assert "http" not in answer.text  # no other server, no CDN


def test_index_is_patched_for_the_sub_path_and_loads_nothing_from_elsewhere(
    http: httpx.Client,
) -> None:
    answer = http.get("/viewer/")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    page = answer.text
    assert 'window.PUBLIC_URL="/viewer/"' in page
    assert 'src="/viewer/app-config.js"' in page
    assert 'src="/' not in page.replace('src="/viewer/', "")
    assert 'href="/' not in page.replace('href="/viewer/', "")
    assert "//" not in page.replace("://", "")  # no protocol-relative or absolute URL
    policy = answer.headers["content-security-policy"]
    assert "connect-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-eval" not in policy


def test_worker_scripts_may_compile_wasm_but_the_page_may_not_eval(
    http: httpx.Client, viewer_dir: Path
) -> None:
    """OHIF's decoders run in workers, which obey their own script's policy (CSP3)."""
    bundle = next(viewer_dir.glob("app.bundle.*.js")).name
    policy = http.get(f"/viewer/{bundle}").headers["content-security-policy"]
    assert "'unsafe-eval' 'wasm-unsafe-eval'" in policy
    assert "connect-src 'self'" in policy


def test_hashed_bundles_are_immutable_and_gzipped_when_accepted(
    http: httpx.Client, viewer_dir: Path
) -> None:
    bundle = next(viewer_dir.glob("app.bundle.*.js"))
    zipped = http.get(f"/viewer/{bundle.name}", headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200
    assert zipped.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert int(zipped.headers["content-length"]) < bundle.stat().st_size / 3
    plain = http.get(f"/viewer/{bundle.name}", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == bundle.read_bytes() == zipped.content  # httpx decoded it
    assert b'__webpack_require__.p = "/viewer/"' in plain.content


def test_wasm_is_served_as_application_wasm(http: httpx.Client, viewer_dir: Path) -> None:
    wasm = next(viewer_dir.glob("*.wasm"))
    answer = http.get(f"/viewer/{wasm.name}", headers={"Accept-Encoding": "gzip"})
    assert answer.headers["content-type"] == "application/wasm"
    assert answer.content[:4] == b"\0asm"


def test_stylesheets_point_below_the_sub_path(http: httpx.Client) -> None:
    css = http.get("/viewer/app.bundle.css")
    assert css.headers["cache-control"] == "no-cache"  # not content-hashed: revalidate
    assert "url(/viewer/" in css.text
    assert "url(/" not in css.text.replace("url(/viewer/", "")


def test_an_unchanged_file_answers_304(http: httpx.Client) -> None:
    first = http.get("/viewer/app.bundle.css", headers={"Accept-Encoding": "gzip"})
    again = http.get(
        "/viewer/app.bundle.css",
        headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304
    assert again.content == b""


def test_client_side_routes_answer_the_index_and_missing_files_404(http: httpx.Client) -> None:
    route = http.get("/viewer/viewer", params={"StudyInstanceUIDs": "1.2.3"})
    assert route.status_code == 200
    assert 'window.PUBLIC_URL="/viewer/"' in route.text
    assert http.get("/viewer/segmentation").status_code == 200
    assert http.get("/viewer/no-such.bundle.0123456789abcdef.js").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/viewer/%2e%2e/%2e%2e/pyproject.toml",
        "/viewer/..%2F..%2Fpyproject.toml",
        "/viewer/.rix-viewer.json",
        "/viewer/app.bundle.css.gz",
        "/viewer/app-config.js.gz",
        "/viewer/sw.js",
    ],
)
def test_nothing_outside_the_prepared_viewer_is_served(http: httpx.Client, path: str) -> None:
    assert http.get(path).status_code == 404


def test_static_bundles_need_no_session_but_the_pages_do(portal: Portal, viewer_dir: Path) -> None:
    """Bundles are the published npm package: nothing to protect, cacheable by anyone."""
    bundle = next(viewer_dir.glob("app.bundle.*.js")).name
    with httpx.Client(base_url=portal.origin, timeout=30) as anonymous:
        assert anonymous.get(f"/viewer/{bundle}").status_code == 200
        for page in ("/viewer", "/viewer/", "/viewer/app-config.js", "/viewer/index.html"):
            answer = anonymous.get(page)
            assert answer.status_code == 303, page
            assert answer.headers["location"] == "/login?next=" + quote(page, safe="")


def npm_tarball(folder: Path, package: Package, files: dict[str, str]) -> Path:
    """A tarball as ``npm pack`` writes it: ``package/package.json`` and the files."""
    made = folder / f"{package.name.strip('@').replace('/', '-')}-{package.version}.tgz"
    contents = {"package.json": json.dumps({"name": package.name, "version": package.version})}
    with tarfile.open(made, "w:gz") as tar:
        for name, text in (contents | files).items():
            body = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return made


def test_an_installed_rix_installs_its_viewer_into_the_data_folder(tmp_path: Path) -> None:
    """Without viewer_dir and portal_assets_dir (as after ``pip install``), /viewer names
    ``rix viewer install``, which puts the pinned releases (here tarballs packed
    beforehand, as on a machine without the registry) in the data folder: the running
    server then serves them."""
    bundle = "app.bundle.0123456789abcdef.js"
    ohif = npm_tarball(
        tmp_path,
        OHIF,
        {
            "dist/index.html": f'<script>window.PUBLIC_URL="/"</script><script src="/{bundle}">'
            "</script>",
            f"dist/{bundle}": '__webpack_require__.p = "/";',
        },
    )
    htmx = npm_tarball(tmp_path, HTMX, {"dist/htmx.min.js": "/* htmx */"})
    unset = {"RIX_VIEWER_DIR": "", "RIX_PORTAL_ASSETS_DIR": ""}
    server = RixServer(data=tmp_path / "data", extra_env=unset).start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}") as client:
            for path in ("/viewer/", "/viewer/app-config.js", f"/viewer/{bundle}"):
                answer = client.get(path)
                assert answer.status_code == 503
                assert "rix viewer install" in answer.text
                assert str(server.data) not in answer.text
            assert client.get("/static/htmx.min.js").status_code == 404

            args = ["viewer", "install", "--data", str(server.data)]
            args += ["--ohif-package", str(ohif), "--htmx-package", str(htmx)]
            installed = CliRunner().invoke(app, args, env=unset)

            assert installed.exit_code == 0, installed.output
            assert viewer.prepared_version(server.data / "viewer") == OHIF.version
            served = client.get(f"/viewer/{bundle}")
            assert served.status_code == 200
            assert served.text == '__webpack_require__.p = "/viewer/";'
            page = client.get("/viewer/", headers=server.auth)
            assert (page.status_code, 'window.PUBLIC_URL="/viewer/"' in page.text) == (200, True)
            assert client.get("/static/htmx.min.js").text == "/* htmx */"
            again = CliRunner().invoke(app, args, env=unset)
            assert "already in" in again.output
    finally:
        server.stop(wait=False)


def test_viewer_install_says_when_npm_is_missing(tmp_path: Path) -> None:
    args = ["viewer", "install", "--data", str(tmp_path / "data")]
    answer = CliRunner().invoke(app, args, env={"PATH": str(tmp_path), "RIX_VIEWER_DIR": ""})
    assert answer.exit_code == 1
    assert "npm is not installed" in " ".join(answer.output.split())


def test_prepare_refuses_an_ohif_build_it_does_not_recognise(tmp_path: Path) -> None:
    """A release built differently must fail the install, not serve a blank viewer."""
    (tmp_path / "index.html").write_text("<html><script src='/app.js'></script></html>")
    (tmp_path / "app.js").write_text("console.log('no public path here')")
    with pytest.raises(viewer.ViewerNotPrepared):
        viewer.prepare(tmp_path)
    assert viewer.prepared_version(tmp_path) is None
