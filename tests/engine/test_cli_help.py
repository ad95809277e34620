"""The command line explains itself: listings with descriptions, --version, bench --help, and help text on every
option of every command and benchmark."""
import argparse
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from engine.cli.main import HelpFormatter, main, summary

COMMANDS = {ep.name: ep for ep in entry_points(group="vsgg.commands")}
BENCHES = {ep.name: ep for ep in entry_points(group="vsgg.benchmarks")}


def test_top_level_help_lists_every_command_with_a_description(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name + " "))
        assert len(line.split(None, 1)[1]) > 10, line


def test_bench_help_lists_benchmarks_not_the_top_level_usage(capsys):
    assert main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: vsgg bench NAME") and "commands:" not in out
    for name in BENCHES:
        assert any(ln.strip().startswith(name + " ") for ln in out.splitlines()), name


def test_version():
    r = subprocess.run([sys.executable, "-m", "engine.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("vsgg ") and r.stdout.split()[1][0].isdigit()


@pytest.mark.parametrize("group, name", [("c", n) for n in sorted(COMMANDS)] + [("b", n) for n in sorted(BENCHES)])
def test_every_option_has_help_and_every_entry_point_a_summary(group, name):
    ep = (COMMANDS if group == "c" else BENCHES)[name]
    assert summary(ep), f"{name}: module docstring's first line is the listing's description"
    parser = argparse.ArgumentParser(prog=name, formatter_class=HelpFormatter)
    ep.load()(parser)
    missing = [a.dest for a in parser._actions if not a.help and not isinstance(a, argparse._HelpAction)]
    assert not missing, f"vsgg {name}: options without help: {missing}"
    text = parser.format_help()
    assert "(default: None)" not in text and "(default: False)" not in text


def test_defaults_are_shown_once():
    p = argparse.ArgumentParser(formatter_class=HelpFormatter)
    p.add_argument("--fps", type=float, default=30.0, help="frame rate")
    p.add_argument("--x", default=1, help="x (default 1)")
    p.add_argument("--flag", action="store_true", help="a flag")
    text = p.format_help()
    assert "frame rate (default: 30.0)" in text and "x (default 1)" in text and "(default: False)" not in text
