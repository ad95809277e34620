"""The ``vsgg`` command: a thin dispatcher over sub-commands registered as entry points.

Each sub-command lives next to the code it drives and is registered in pyproject.toml under
``[project.entry-points."vsgg.commands"]`` (``vsgg NAME ...``) or ``"vsgg.benchmarks"`` (``vsgg bench NAME ...``).
An entry point is a function ``add_parser(parser) -> run`` that adds its arguments to ``parser`` and returns
``run(args) -> int`` (commands) or ``run(args) -> dict`` (benchmarks; the dict is written by ``--json OUT``).
Only the module of the requested command is imported, so ``vsgg track`` never pays for torch, and ``engine/``
never imports ``offline_train/`` or ``export/``.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import sys
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default after its help, unless there is nothing worth showing (None, False, '')."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text or default in (None, False, "", argparse.SUPPRESS) or not action.option_strings
                or isinstance(action, argparse._HelpAction)):
            return text
        return f"{text} (default: %(default)s)"


def _group(name: str) -> dict:
    return {ep.name: ep for ep in entry_points(group=name)}


def summary(ep) -> str:
    """First line of the docstring of an entry point's module, read without importing it (importing would pull in
    torch or rclpy just to print a listing)."""
    try:
        spec = importlib.util.find_spec(ep.value.split(":")[0])
        doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) if spec and spec.origin else None
    except (ImportError, OSError, SyntaxError, ValueError):
        doc = None
    line = doc.strip().splitlines()[0] if doc else ""
    if line.startswith("`") and "`: " in line:  # "`vsgg run --source SPEC ...`: what it does" -> what it does
        line = line.split("`: ", 1)[1]
    return line[:1].upper() + line[1:].rstrip(".")


def _listing(group: dict, indent: str = "  ") -> str:
    width = max((len(n) for n in group), default=0)
    return "\n".join(f"{indent}{n.ljust(width)}  {summary(ep)}".rstrip() for n, ep in sorted(group.items()))


def _version() -> str:
    try:
        return version("vsgg")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _usage(commands: dict, benches: dict) -> str:
    return (
        "usage: vsgg [--version] COMMAND [options]\n\n"
        f"commands:\n{_listing(commands)}\n  {'bench'.ljust(max(map(len, commands), default=5))}  "
        "benchmarks, see 'vsgg bench --help'\n\n"
        "Run 'vsgg COMMAND --help' for the options of one command."
    )


def _bench_usage(benches: dict) -> str:
    return ("usage: vsgg bench NAME [--json OUT] [options]\n\n"
            "Benchmarks print median and p95 and a ratio against a baseline run in the same process;\n"
            "--json OUT also writes the figures there.\n\n"
            f"benchmarks:\n{_listing(benches)}\n\nRun 'vsgg bench NAME --help' for the options of one benchmark.")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands, benches = _group("vsgg.commands"), _group("vsgg.benchmarks")
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(commands, benches))
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"vsgg {_version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name == "bench":
        if not rest or rest[0] in ("-h", "--help"):
            print(_bench_usage(benches))
            return 0 if rest else 2
        bname, rest = rest[0], rest[1:]
        if bname not in benches:
            print(f"vsgg bench: unknown benchmark '{bname}' (known: {', '.join(sorted(benches))})", file=sys.stderr)
            return 2
        parser = argparse.ArgumentParser(prog=f"vsgg bench {bname}", description=summary(benches[bname]),
                                         formatter_class=HelpFormatter)
        parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the figures here")
        run = benches[bname].load()(parser)
        args = parser.parse_args(rest)
        figures = run(args)
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures, indent=2, sort_keys=True))
            print(f"figures written to {args.json}")
        return 0
    if name not in commands:
        print(f"vsgg: unknown command '{name}'\n\n{_usage(commands, benches)}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"vsgg {name}", description=summary(commands[name]),
                                     formatter_class=HelpFormatter)
    run = commands[name].load()(parser)
    args = parser.parse_args(rest)
    try:
        return int(run(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        # Bad user input (config, files, data): one clear line, not a traceback.
        print(f"vsgg {name}: error: {e}", file=sys.stderr)
        return 1

