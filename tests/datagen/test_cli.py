"""datagen.cli (and datagen.__main__, run as ``python -m datagen``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from datagen import cli


def test_cli_help_and_run(tmp_path):
    root = Path(__file__).resolve().parents[2]
    helptext = subprocess.run([sys.executable, "-m", "datagen", "--help"], cwd=root, capture_output=True,
                              text=True, check=True).stdout
    assert "--seed" in helptext and "--bad-rate" in helptext
    done = subprocess.run([sys.executable, "-m", "datagen", "--out", str(tmp_path), "--days", "1", "--events",
                           "500", "--exchanges", "X:csv,Y:json"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "csv" / "2020-08-05" / "X").is_dir() and (tmp_path / "json" / "2020-08-05" / "Y").is_dir()
    bad = subprocess.run([sys.executable, "-m", "datagen", "--exchanges", "X:xml"], cwd=root,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "NAME:csv or NAME:json" in bad.stderr


def test_cli_help_shows_every_default():
    """--help hid the defaults of --seed, --start, --events, --symbols and --trade-share."""
    from datagen.cli import build_parser

    helptext = " ".join(build_parser().format_help().split())
    for default in ("(default: raw)", "(default: 42)", "(default: 2020-08-05)", "(default: 2)",
                    "(default: 20000)", "(default: 8)", "(default: 3)", "(default: 0.002)", "(default: 0.01)",
                    "(default: 0.35)", "(default: NYSE:csv"):
        assert default in helptext, default


def test_exchanges_and_start_are_parsed():
    args = cli.build_parser().parse_args(["--exchanges", "A:csv, B:json", "--start", "2021-02-03"])
    assert args.exchanges == (("A", "csv"), ("B", "json"))
    assert str(args.start) == "2021-02-03"


@pytest.mark.parametrize(("argv", "message"), [
    (["--start", "2020-13-01"], "'2020-13-01' is not a YYYY-MM-DD date"),
    (["--exchanges", ":csv"], "':csv': expected NAME:csv or NAME:json"),
    (["--exchanges", "A"], "'A': expected NAME:csv or NAME:json"),
    (["--days", "two"], "invalid int value: 'two'"),
], ids=["start", "exchange-name", "exchange-format", "days"])
def test_bad_argument_exits_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("usage: python -m datagen")


def test_bad_config_returns_2_with_a_message_and_writes_nothing(tmp_path, capsys):
    assert cli.main(["--out", str(tmp_path / "raw"), "--days", "0"]) == 2
    assert capsys.readouterr().err == "datagen: days, symbols and parts must be >= 1 and events >= 0\n"
    assert cli.main(["--out", str(tmp_path / "raw"), "--bad-rate", "2"]) == 2
    assert "bad_rate must be within [0, 1], got 2.0" in capsys.readouterr().err
    assert not (tmp_path / "raw").exists()


def test_main_writes_the_files_and_reports_what_it_wrote(tmp_path, capsys):
    out = tmp_path / "raw"
    assert cli.main(["--out", str(out), "--days", "2", "--events", "300", "--symbols", "2", "--parts", "1",
                 "--exchanges", "X:csv", "--start", "2020-08-07", "--bad-rate", "0"]) == 0
    lines = sum(len(p.read_bytes().splitlines()) for p in out.rglob("part-*.txt"))
    report = capsys.readouterr().out
    assert report.startswith(f"datagen: {lines} lines (") and "bad: none" in report
    assert "in 2 files" in report and "days 2020-08-07, 2020-08-10 ->" in report
