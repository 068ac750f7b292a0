"""The layers of DESIGN.md hold in the code: imports point down only, and never in a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.architecture import layers

ROOT = Path(__file__).resolve().parents[2]
FOUND = list(layers.imports(layers.modules()))


def test_every_part_of_rix_has_a_place_in_the_layers() -> None:
    parts = {layers.part_of(m) for m in layers.modules() if m != "rix"}
    assert parts == set(layers.ORDER)


def test_no_module_imports_a_part_above_its_own() -> None:
    found = [f"{i.importer}:{i.line} imports {i.imported}" for i in layers.upward(FOUND)]
    assert found == []


def test_no_modules_import_each_other_in_a_cycle() -> None:
    assert layers.cycles(FOUND) == []


def test_an_upward_import_inside_a_function_is_found(tmp_path: Path) -> None:
    """The rule is not vacuous: a lower layer reaching up from inside a function (the way
    ``config`` once imported ``workflow``) is caught, and so is the cycle it closes."""
    src = tmp_path / "src"
    for module, text in {
        "rix/__init__.py": "",
        "rix/config.py": "def targets():\n    from rix.workflow import turnaround\n",
        "rix/workflow/__init__.py": "",
        "rix/workflow/turnaround.py": "from rix import config\n",
    }.items():
        (src / module).parent.mkdir(parents=True, exist_ok=True)
        (src / module).write_text(text)
    found = list(layers.imports(layers.modules(src)))
    assert [(i.importer, i.imported) for i in layers.upward(found)] == [
        ("rix.config", "rix.workflow.turnaround")
    ]
    assert layers.cycles(found) == [["rix.config", "rix.workflow.turnaround"]]


@pytest.mark.parametrize("module", sorted(layers.modules()))
def test_every_package_says_what_its_one_job_is(module: str) -> None:
    path = layers.modules()[module]
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path} has no docstring"


def test_at_most_six_modules_sit_at_the_top() -> None:
    top = sorted(p.name for p in (ROOT / "src" / "rix").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= 6, top


@pytest.mark.parametrize("path", sorted((ROOT / "src" / "rix").rglob("*.py")), ids=str)
def test_no_module_is_over_600_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 600


def test_the_readme_picture_is_drawn_from_the_code() -> None:
    drawn = (ROOT / "docs" / "architecture.svg").read_text()
    again = "python -m tests.architecture.layers docs/architecture.svg"
    assert drawn == layers.svg(FOUND), f"draw it again: {again}"


def test_the_readme_names_every_part_in_its_architecture_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    for part in layers.ORDER:
        name = f"`{part}/`" if (ROOT / "src" / "rix" / part).is_dir() else f"`{part}.py`"
        assert name in table, f"{name} is missing from the README's architecture table"
