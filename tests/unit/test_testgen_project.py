"""Project discovery (lsp_server.testgen.project): root, module name, interpreter, framework and
the example test file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.testgen import project as discovery


def test_module_names_for_flat_src_and_package_layouts(tmp_path: Path) -> None:
    assert discovery.module_name(tmp_path / "pkg" / "mod.py", tmp_path) == (tmp_path, "pkg.mod")
    assert discovery.module_name(tmp_path / "src" / "pkg" / "__init__.py", tmp_path) == (
        tmp_path / "src",
        "pkg",
    )
    with pytest.raises(discovery.TestGenError, match="cannot be imported"):
        discovery.module_name(tmp_path / "my-scripts" / "run.py", tmp_path)


def test_locate_project_finds_root_tests_framework_and_example(project_dir: Path) -> None:
    project = discovery.locate_project(project_dir / "textkit" / "numbers.py")
    assert project.root == project_dir.resolve()
    assert project.module == "textkit.numbers"
    assert project.test_path == project_dir.resolve() / "tests" / "test_numbers.py"
    assert project.framework == "pytest"
    assert project.example_path is not None and project.example_path.name == "test_strings.py"


def test_unittest_projects_and_their_virtual_environment(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = x\n")
    (tmp_path / "lib.py").write_text("def f():\n    return 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_other.py").write_text(
        "import unittest\n\n\nclass T(unittest.TestCase):\n    pass\n"
    )
    venv_python = tmp_path / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text("")
    project = discovery.locate_project(tmp_path / "lib.py")
    assert project.framework == "unittest"
    assert project.python == str(venv_python)
    assert discovery.locate_project(tmp_path / "lib.py", python="/opt/py").python == "/opt/py"


def test_the_root_stops_at_the_workspace_folder_without_a_marker(tmp_path: Path) -> None:
    workspace = tmp_path / "outer" / "work"
    (workspace / "pkg").mkdir(parents=True)
    (tmp_path / "outer" / "pyproject.toml").write_text("")
    source = workspace / "pkg" / "mod.py"
    assert discovery.find_root(source, [workspace]) == workspace.resolve()
    assert discovery.find_root(source) == (tmp_path / "outer").resolve()
