"""Command line: ``python -m pyramid <command> ...``.

Commands:
    trace   run the pyramid encoder on one text and print the trace as one JSON object.

Errors (empty text, missing file, bad model, bad schedule) print one line to stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from .loading import DEFAULT_MODEL, ModelLoadError
from .schedule import Schedule, ScheduleError
from .selectors import SELECTORS


def _quiet_transformers() -> None:
    """Keep stdout/stderr clean for scripts: no progress bars or advisory warnings from transformers."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _read_text(args) -> str:
    if args.file is not None and args.text is not None:
        raise ValueError("give either TEXT or --file, not both")
    if args.file is not None:
        if args.file == "-":
            return sys.stdin.read()
        with open(args.file, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    if args.text is None:
        raise ValueError("give a TEXT argument or --file PATH")
    return args.text


def cmd_trace(args) -> int:
    """``trace``: print the trace JSON of one text."""
    from .loading import load_encoder
    from .trace import trace_text

    text = _read_text(args)
    schedule = Schedule(retention=args.retention, start_layer=args.start_layer)
    _quiet_transformers()
    encoder = load_encoder(args.model)
    schedule.validate(encoder.num_layers)
    trace = trace_text(encoder, text, args.selector, schedule, seed=args.seed, max_length=args.max_length)
    if trace.truncated:
        print(f"note: the text has {trace.original_length} tokens; truncated to {trace.max_length}.",
              file=sys.stderr)
    json.dump(trace.to_json(hidden=args.hidden), sys.stdout)
    sys.stdout.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m pyramid``."""
    parser = argparse.ArgumentParser(prog="python -m pyramid", description="Pyramid Lens: token reduction in BERT encoders.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("trace", help="run the pyramid on one text and print its trace as JSON")
    p.add_argument("text", nargs="?", help="the text (or use --file)")
    p.add_argument("--file", help="read the text from this file ('-' for stdin)")
    p.add_argument("--selector", default="coreset", choices=sorted(SELECTORS), help="token selector (default coreset)")
    p.add_argument("--retention", type=float, default=0.5, help="final retention ratio in (0, 1] (default 0.5)")
    p.add_argument("--start-layer", type=int, default=1, help="first layer after whose output selection happens (default 1)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"local folder or hub id of a BERT-family encoder (default {DEFAULT_MODEL})")
    p.add_argument("--seed", type=int, default=0, help="seed of the random selector (default 0)")
    p.add_argument("--max-length", type=int, default=None, help="token limit, [CLS]/[SEP] included (default: the model's, 512)")
    p.add_argument("--hidden", action="store_true", help="include every layer's hidden states")
    p.set_defaults(func=cmd_trace)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from .trace import EmptyTextError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (EmptyTextError, ModelLoadError, ScheduleError, ValueError, KeyError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
