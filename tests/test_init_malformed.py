"""`mqf init --files` on malformed folders: each bad file is named with its reason, the good files still make
a fund (exit 0), a folder with nothing usable exits 1 and writes no config (nothing half-written)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mqf_cli.main import app

runner = CliRunner()
GOOD = (
    "Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,10,11,9,10.5,10.5,1000\n"
    "2024-01-03,10.5,11,10,10.8,10.8,1200\n"
)

#: case -> (file name, content, words the message must contain)
CASES: dict[str, tuple[str, bytes, tuple[str, ...]]] = {
    "not a table": ("BAD.csv", b"\x00\x01\x02\xff\xfe garbage", ("BAD.csv",)),
    "no date column": ("BAD.csv", b"open,close\n1,2\n", ("BAD.csv", "date")),
    "unreadable date": ("BAD.csv", b"date,close,volume\n2024-01-02,10,5\nnot-a-date,11,6\n", ("BAD.csv", "row")),
    "intraday": (
        "BAD.csv",
        b"date,close,volume\n2024-01-02 10:00,10,5\n2024-01-02 11:00,11,6\n2024-01-03 10:00,12,6\n"
        b"2024-01-03 11:00,12,7\n",
        ("BAD.csv", "intraday"),
    ),
    "duplicate columns": ("BAD.csv", b"date,close,Close,volume\n2024-01-02,10,10,5\n", ("BAD.csv", "close")),
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("DAGSTER_HOME", "MQF_CONFIG_DIR", "MQF_RUNTIME_DIR"):
        monkeypatch.delenv(var, raising=False)
    yield
    os.environ.pop("MQF_CONFIG_DIR", None)


def _folder(tmp_path: Path, name: str, content: bytes, with_good: bool) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (root / name).write_bytes(content)
    if with_good:
        (root / "GOOD.csv").write_text(GOOD)
    return root


@pytest.mark.parametrize("case", sorted(CASES))
def test_init_names_a_bad_file_and_keeps_the_good_ones(tmp_path, case):
    name, content, words = CASES[case]
    root = _folder(tmp_path, name, content, with_good=True)
    result = runner.invoke(app, ["init", "--files", str(root), "--out", str(tmp_path / "fund"), "--min-history", "1"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("cannot use"))
    for word in words:
        assert word.lower() in line.lower(), line
    universe = (tmp_path / "fund" / "configs" / "universe.yaml").read_text()
    assert "GOOD" in universe and "BAD" not in universe


@pytest.mark.parametrize("case", sorted(CASES))
def test_init_with_nothing_usable_exits_1_and_writes_nothing(tmp_path, case):
    name, content, _words = CASES[case]
    root = _folder(tmp_path, name, content, with_good=False)
    result = runner.invoke(app, ["init", "--files", str(root), "--out", str(tmp_path / "fund")])
    assert result.exit_code == 1, result.output
    assert "no usable daily bars" in result.output and name in result.output
    assert not (tmp_path / "fund").exists()


def test_init_on_a_missing_folder_exits_2(tmp_path):
    result = runner.invoke(app, ["init", "--files", str(tmp_path / "nope"), "--out", str(tmp_path / "fund")])
    assert result.exit_code == 2 and "no such folder" in result.output
