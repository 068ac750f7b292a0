"""``rix viewer install``: the OHIF viewer and the portal's htmx, pinned, into the folders
rix serves them from (by default ``viewer/`` and ``assets/`` in the data folder), so an
installed rix (``pip install``, no source tree) has a working ``/viewer/``.

Both come from the npm registry as published packages, packed by ``npm pack`` (the
registry's own client: its cache, proxy and integrity checks), or from a tarball packed
elsewhere (``--ohif-package``, ``--htmx-package``) on a machine without the registry. The
versions are pinned here, once: ``make viewer`` and ``make run`` call this command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from rix.cli.options import ConfigOpt, DataOpt, _settings, console
from rix.config import SETTINGS

viewer_app = typer.Typer(help="The OHIF viewer and the portal's scripts.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(viewer_app, name="viewer")


@dataclass(frozen=True, slots=True, kw_only=True)
class Package:
    """An npm package at its pinned version."""

    name: str
    version: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


OHIF = Package(name="@ohif/app", version="3.13.2")
HTMX = Package(name="htmx.org", version="2.0.11")
HTMX_FILE = "htmx.min.js"  # what rix.web.portal.pages serves at /static/htmx.min.js


class InstallFailed(Exception):
    """A package could not be fetched or is not the pinned one; the reason is for people."""


def unpacked(package: Package, tarball: Path | None, work: Path) -> Path:
    """The ``package/`` folder of the pinned release, from ``tarball`` or ``npm pack``."""
    if tarball is None:
        npm = shutil.which("npm")
        if npm is None:
            raise InstallFailed(
                f"npm is not installed: it fetches {package.spec} from the npm registry "
                "(Debian: apt-get install npm), or give a tarball packed elsewhere with "
                "--ohif-package / --htmx-package"
            )
        packed = subprocess.run(
            [npm, "pack", "--silent", "--pack-destination", str(work), package.spec],
            capture_output=True,
            text=True,
            check=False,
        )
        if packed.returncode != 0:
            raise InstallFailed(f"npm pack {package.spec} failed: {packed.stderr.strip()}")
        tarball = work / packed.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as tar:
        tar.extractall(work / "unpacked", filter="data")
    folder = work / "unpacked" / "package"
    try:
        found = json.loads((folder / "package.json").read_text())
    except (OSError, ValueError) as exc:
        raise InstallFailed(f"{tarball} is not an npm package: {exc}") from exc
    if (found.get("name"), found.get("version")) != (package.name, package.version):
        raise InstallFailed(
            f"{tarball} holds {found.get('name')}@{found.get('version')}, not {package.spec}"
        )
    return folder


def install_viewer(folder: Path, tarball: Path | None) -> None:
    """The pinned OHIF dist, prepared for ``/viewer/``, replacing ``folder`` whole: a
    server reading it meanwhile sees the old viewer or the new one, never half of one."""
    from rix.web import viewer

    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".viewer-") as work:
        dist = unpacked(OHIF, tarball, Path(work)) / "dist"
        try:
            viewer.prepare(dist)
        except viewer.ViewerNotPrepared as exc:
            raise InstallFailed(f"cannot serve this OHIF build: {exc}") from exc
        old = Path(work) / "old"
        if folder.exists():
            folder.rename(old)
        dist.rename(folder)


def install_htmx(folder: Path, tarball: Path | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".htmx-") as work:
        script = unpacked(HTMX, tarball, Path(work)) / "dist" / HTMX_FILE
        if not script.is_file():
            raise InstallFailed(f"{HTMX.spec} has no dist/{HTMX_FILE}")
        os.replace(script, folder / HTMX_FILE)
    for stale in folder.glob("htmx-*.stamp"):
        stale.unlink()
    (folder / f"htmx-{HTMX.version}.stamp").touch()


def htmx_installed(folder: Path) -> bool:
    return (folder / HTMX_FILE).is_file() and (folder / f"htmx-{HTMX.version}.stamp").is_file()


ViewerDirOpt = Annotated[Path | None, typer.Option(help=SETTINGS["viewer_dir"].help)]
AssetsDirOpt = Annotated[Path | None, typer.Option(help=SETTINGS["portal_assets_dir"].help)]


@viewer_app.command("install")
def install(
    ohif_package: Annotated[
        Path | None,
        typer.Option(help=f"A tarball of {OHIF.spec} packed elsewhere; default: npm pack."),
    ] = None,
    htmx_package: Annotated[
        Path | None,
        typer.Option(help=f"A tarball of {HTMX.spec} packed elsewhere; default: npm pack."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Install again even when present.")] = False,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    viewer_dir: ViewerDirOpt = None,
    portal_assets_dir: AssetsDirOpt = None,
) -> None:
    """Install the pinned OHIF viewer (npm @ohif/app) and htmx where rix serves them (by
    default viewer/ and assets/ in the data folder); nothing to do when they are there."""
    from rix.web import viewer

    settings = _settings(cfg, data=data, viewer_dir=viewer_dir, portal_assets_dir=portal_assets_dir)
    target, assets = settings.viewer_folder, settings.portal_assets_folder
    try:
        if force or viewer.prepared_version(target) != OHIF.version:
            install_viewer(target, ohif_package)
            console.print(f"OHIF {OHIF.version} installed in {target}")
        else:
            console.print(f"OHIF {OHIF.version} is already in {target}")
        if force or not htmx_installed(assets):
            install_htmx(assets, htmx_package)
            console.print(f"htmx {HTMX.version} installed in {assets}")
        else:
            console.print(f"htmx {HTMX.version} is already in {assets}")
    except (InstallFailed, OSError, tarfile.TarError) as exc:
        console.print(f"[red]rix viewer install: {exc}[/red]")
        raise typer.Exit(1) from exc
