"""Hostile and damaged YAML: every case is a located problem (exit 2), never a hang,
a traceback or a silent fall back to the bundled default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from icp_engine import mappings
from icp_engine.sync.cli.main import main
from icp_engine.sync.config import load_config
from icp_engine.sync.yamlfile import MAX_BYTES, ConfigError, ConfigProblem, load_yaml, read_yaml

BUNDLED_ICP = mappings.default("icp.yaml").read_text(encoding="utf-8")
LAUGHS = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.fixture
def mdir(tmp_path: Path) -> Path:
    for name in ("csv.yaml", "icp.yaml"):
        (tmp_path / name).write_text(mappings.default(name).read_text(encoding="utf-8"))
    return tmp_path


def problems(directory: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config("csv", directory)
    return caught.value.problems


def validate(directory: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["mappings", "validate", "--mappings", str(directory)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def line_with(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("name", "tail", "expected"),
    [
        ("billion laughs", LAUGHS, "billion laughs"),
        ("deep nesting", "deep: " + "[" * 600 + "]" * 600 + "\n", "nested deeper than 64"),
        ("self alias", "loop: &l [*l]\n", "nested deeper than 64"),
        ("complex key", "? [a, b]\n: 1\n", "a list used as a key"),
        ("mapping key", "? {a: 1}\n: 1\n", "a mapping used as a key"),
        ("5000-digit number", "huge: " + "9" * 5000 + "\n", "a number with 5000 digits"),
        ("overflowing float", "huge: 1.0e+999\n", "too large a number"),
        ("BEL character", 'bell: "ring\x07"\n', "control character U+0007"),
        ("bad timestamp", "when: 2020-02-31\n", "cannot be read as timestamp"),
    ],
)
def test_hostile_yaml_is_a_located_problem(mdir: Path, name: str, tail: str, expected: str) -> None:
    text = BUNDLED_ICP + tail
    (mdir / "icp.yaml").write_text(text, encoding="utf-8")
    code, output = validate(mdir)
    assert code == 2, output
    found = [p for p in problems(mdir) if expected in p.message]
    assert found, f"{name}: {problems(mdir)}"
    assert found[0].file == str(mdir / "icp.yaml")
    first_new_line = len(BUNDLED_ICP.splitlines()) + 1
    assert found[0].line is not None and found[0].line >= first_new_line, found[0]
    assert "Traceback" not in output


def test_nul_and_binary_content_named_with_line(mdir: Path) -> None:
    text = BUNDLED_ICP.replace("name: Starting ICP", "name: Start\x00ing ICP")
    (mdir / "icp.yaml").write_text(text, encoding="utf-8")
    (problem,) = problems(mdir)
    assert "NUL" in problem.message and "binary" in problem.message
    assert problem.line == line_with(text, "name: Start")
    (mdir / "icp.yaml").write_bytes(bytes(range(256)) * 40)
    (problem,) = problems(mdir)
    assert "binary" in problem.message and problem.line == 1


def test_oversize_file_refused_before_reading(mdir: Path) -> None:
    path = mdir / "icp.yaml"
    with path.open("wb") as handle:  # sparse: costs no disk, and must cost no parsing
        handle.truncate(MAX_BYTES + 1)
    (problem,) = problems(mdir)
    assert "at most 5 MB" in problem.message and "without reading" in problem.message


def test_latin1_text_names_the_line(mdir: Path) -> None:
    text = BUNDLED_ICP.replace("name: Starting ICP", "name: Café ICP")
    (mdir / "icp.yaml").write_bytes(text.encode("latin-1"))
    (problem,) = problems(mdir)
    assert "not UTF-8" in problem.message and problem.line == line_with(text, "name: Caf")


def test_dangling_symlink_is_an_error_not_the_default(mdir: Path) -> None:
    (mdir / "icp.yaml").unlink()
    os.symlink(mdir / "gone.yaml", mdir / "icp.yaml")
    code, output = validate(mdir)
    assert code == 2 and "0 errors" not in output
    (problem,) = problems(mdir)
    assert "symbolic link" in problem.message and "does not exist" in problem.message


def test_directory_in_place_of_mapping_is_an_error(mdir: Path) -> None:
    (mdir / "csv.yaml").unlink()
    (mdir / "csv.yaml").mkdir()
    (problem,) = problems(mdir)
    assert problem.file == str(mdir / "csv.yaml") and "is a directory" in problem.message


def test_icp_yml_beside_missing_icp_yaml_asks_did_you_mean(mdir: Path) -> None:
    (mdir / "icp.yaml").rename(mdir / "icp.yml")
    code, output = validate(mdir)
    assert code == 2, output
    assert "did you mean" in output and "icp.yml" in output and "0 errors" not in output


def test_missing_file_without_near_miss_still_uses_bundled_default(mdir: Path) -> None:
    (mdir / "icp.yaml").unlink()
    config = load_config("csv", mdir)
    assert config.files["icp"] == "(bundled) mappings/icp.yaml"


def test_dates_where_numbers_are_expected(mdir: Path) -> None:
    text = BUNDLED_ICP.replace("between: [50, 500]", "between: [2020-01-01, 2021-01-01]")
    (mdir / "icp.yaml").write_text(text, encoding="utf-8")
    (problem,) = problems(mdir)
    assert "number field" in problem.message and "2020-01-01" in problem.message
    assert problem.line == line_with(text, "between: [2020")


def test_valid_yaml_still_loads_with_lines() -> None:
    document = load_yaml("a:\n  b: [1, 2]\n  c: &x {d: 1}\n  e: *x\n", "f.yaml")
    assert document.problems == []
    assert document.data == {"a": {"b": [1, 2], "c": {"d": 1}, "e": {"d": 1}}}
    assert document.lines[("a", "e")] == 4


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "icp.yaml"
    os.mkfifo(fifo)
    (problem,) = read_yaml(fifo).problems
    assert "not a regular file" in problem.message


def test_mapping_editor_reads_through_the_same_loader() -> None:
    from icp_engine.sync.editor.session import _safe
    from icp_engine.sync.mapedit import EditError, load

    bomb = BUNDLED_ICP + LAUGHS
    assert _safe(bomb) == {}  # no expansion: the editor shows nothing rather than hang
    with pytest.raises(EditError, match="billion laughs"):
        load(bomb)
    with pytest.raises(EditError, match="nested deeper than 64"):
        load("x: " + "[" * 600 + "]" * 600 + "\n")
