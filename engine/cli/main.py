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
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path


def _group(name: str) -> dict:
    return {ep.name: ep for ep in entry_points(group=name)}


def _usage(commands: dict, benches: dict) -> str:
    return (
        "usage: vsgg COMMAND [options]\n\n"
        f"commands: {', '.join(sorted(commands))}, bench\n"
        f"benchmarks (vsgg bench NAME [--json OUT]): {', '.join(sorted(benches))}\n\n"
        "Run 'vsgg COMMAND --help' for the options of one command."
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands, benches = _group("vsgg.commands"), _group("vsgg.benchmarks")
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(commands, benches))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "bench":
        if not rest or rest[0] in ("-h", "--help"):
            print(_usage(commands, benches))
            return 0 if rest else 2
        bname, rest = rest[0], rest[1:]
        if bname not in benches:
            print(f"vsgg bench: unknown benchmark '{bname}' (known: {', '.join(sorted(benches))})", file=sys.stderr)
            return 2
        parser = argparse.ArgumentParser(prog=f"vsgg bench {bname}")
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
    parser = argparse.ArgumentParser(prog=f"vsgg {name}")
    run = commands[name].load()(parser)
    args = parser.parse_args(rest)
    try:
        return int(run(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        # Bad user input (config, files, data): one clear line, not a traceback.
        print(f"vsgg {name}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
