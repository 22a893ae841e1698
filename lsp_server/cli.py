"""The `flashcode` command: serve, complete, model, bench, eval, doctor, stats, settings."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, get_args

from lsp_server.settings import Device, LogLevel
from lsp_server.settings_schema import json_schema

BENCHMARKS = (
    "engine",
    "lsp",
    "cache",
    "commands",
    "index",
    "remote",
    "retrieval",
    "mixing",
    "steps",
    "reliability",
    "lookup",
)
# Benchmarks whose module is not benchmarks/<name>.py.
BENCH_MODULES = {"index": "benchmarks.index_bench", "steps": "benchmarks.step_cost"}
EVALS = ("humaneval-infilling", "nextline", "agreement", "repo", "bpb", "retrieval")
# Evaluations with a module of their own; the others are subcommands of benchmarks.evaluate.
EVAL_MODULES = {
    "repo": "benchmarks.repo_eval",
    "bpb": "benchmarks.bpb",
    "retrieval": "benchmarks.retrieval_eval",
}


def _serve(args: argparse.Namespace) -> int:
    from lsp_server.features import build_server
    from lsp_server.server import apply_log_level

    logging.basicConfig(
        stream=sys.stderr,  # stdout carries the protocol
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    apply_log_level(args.log_level or "info")
    overrides: dict[str, Any] = {}
    if args.model:
        overrides["modelPath"] = str(args.model)
    if args.device:
        overrides["device"] = args.device
    if args.tcp:
        from lsp_server.backends.local import ModelManager
        from lsp_server.transport import serve_tcp

        host, _, port = args.tcp.rpartition(":")
        models = ModelManager()  # one model for every client: their requests batch together
        try:
            serve_tcp(
                lambda: build_server(overrides, models, args.log_level),
                lambda server: server.end_connection(),
                host or "127.0.0.1",
                int(port),
            )
        finally:
            models.close()
        logging.shutdown()
        os._exit(0)  # as below: no interpreter teardown once the work is over
    server = build_server(overrides, log_level=args.log_level)
    server.start_io()
    # The editor is gone or said exit. What must outlive the process is written now, and it ends
    # without the interpreter's teardown: freeing the models that way took seconds on a loaded
    # machine, and an editor waits for its language server to go (or kills it).
    server.release()
    logging.shutdown()
    os._exit(server.exit_code)


def cursor_offset(text: str, line: int, character: int) -> int:
    """The str index of a 0-based line and column, or ValueError naming what is out of range."""
    lines = text.split("\n")
    if not 0 <= line < len(lines):
        raise ValueError(f"line {line} is outside the file (lines 0 to {len(lines) - 1})")
    width = len(lines[line].rstrip("\r"))
    if not 0 <= character <= width:
        raise ValueError(f"column {character} is outside line {line} (columns 0 to {width})")
    return sum(len(before) + 1 for before in lines[:line]) + character


def _complete(args: argparse.Namespace) -> int:
    from lsp_server.backends.local import ModelManager
    from lsp_server.completion.pipeline import CompletionService
    from lsp_server.settings import merge
    from prompts.context import Document

    overrides: dict[str, Any] = {"modelPath": str(args.model)} if args.model else {}
    settings, problems = merge(overrides)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
        offset = cursor_offset(text, args.line, args.character)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    document = Document(
        uri=path.resolve().as_uri(), path=str(path), language_id=args.language or "", text=text
    )

    async def run() -> int:
        models = ModelManager()
        await models.load(settings)
        if not models.ready:
            print(f"error: {models.error}", file=sys.stderr)
            return 1
        service = CompletionService(models)
        service.apply_settings(settings)
        suggestion = await service.suggest(document, offset, [], settings, invoked=True)
        service.close()
        models.close()
        print(suggestion.text if suggestion else "")
        return 0

    return asyncio.run(run())


def _model(args: argparse.Namespace) -> int:
    if args.model_command == "info":
        from inference.model import ModelError, load_model_info

        try:
            info = load_model_info(args.dir)
        except ModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(info.describe(), indent=2))
        return 0
    if args.model_command == "quantize":
        from inference.quantize import quantize

        out = quantize(args.src, args.dst, bits=args.bits, block_size=args.block_size)
        print(f"wrote {out}")
        return 0
    from inference.build.__main__ import main as build_main

    argv = ["all", "--work", str(args.work), "--out", str(args.out)]
    if args.corpus_from is not None:
        argv += ["--corpus-from", str(args.corpus_from)]
    if args.gpu_minutes is None:
        build_main([*argv, "--minutes", str(args.minutes)])
        return 0
    import torch

    if not torch.cuda.is_available():
        print(
            "note: torch sees no CUDA GPU, so the GPU recipe (the 31M-parameter model) trains on "
            "the CPU: fine for trying the command, far too slow for a real run",
            file=sys.stderr,
        )
    build_main([*argv, "--gpu", "--minutes", str(args.gpu_minutes)])
    return 0


def _module_main(module: str, argv: list[str]) -> int:
    return int(importlib.import_module(module).main(argv) or 0)


def _evaluate(args: argparse.Namespace) -> int:
    if args.name in EVAL_MODULES:
        return _module_main(EVAL_MODULES[args.name], args.rest)
    return _module_main("benchmarks.evaluate", [args.name, *args.rest])


def _doctor(args: argparse.Namespace) -> int:
    from lsp_server.doctor import run_checks

    report = run_checks()
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def _stats(args: argparse.Namespace) -> int:
    from lsp_server.usage import cli

    return cli.run(args)


def _settings(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flashcode", description="Local AI code completion.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    serve.add_argument("--model", type=Path, help="model directory (default: the embedded model)")
    serve.add_argument("--device", choices=get_args(Device))
    serve.add_argument(
        "--log-level",
        choices=get_args(LogLevel),
        help="log level for this run, over the logLevel setting (default: the setting, info)",
    )
    serve.set_defaults(func=_serve)

    complete = sub.add_parser("complete", help="print one completion for a file position")
    complete.add_argument("file")
    complete.add_argument("--line", type=int, required=True, help="0-based line")
    complete.add_argument("--character", type=int, required=True, help="0-based column")
    complete.add_argument(
        "--language", default="", help="language id (default: from the extension)"
    )
    complete.add_argument("--model", type=Path)
    complete.set_defaults(func=_complete)

    model = sub.add_parser("model", help="inspect, quantize or build models")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    info = model_sub.add_parser(
        "info", help="layout, IO, size, precision and fingerprint of a model"
    )
    info.add_argument("dir", type=Path)
    quant = model_sub.add_parser(
        "quantize", help="weight-only int4/int8 (MatMulNBits) copy of a model"
    )
    quant.add_argument("src", type=Path)
    quant.add_argument("dst", type=Path)
    quant.add_argument("--bits", type=int, choices=[4, 8], default=4)
    quant.add_argument("--block-size", type=int, default=32)
    build = model_sub.add_parser(
        "build", help="train and export flashcode-tiny (needs the [build] extra)"
    )
    build.add_argument("--minutes", type=float, default=90.0)
    build.add_argument("--out", type=Path, required=True)
    build.add_argument("--work", type=Path, default=Path("runs/tiny"))
    build.add_argument(
        "--gpu-minutes",
        type=float,
        default=None,
        help="train the larger GPU model (31M parameters, CUDA) for this many minutes instead",
    )
    build.add_argument(
        "--corpus-from",
        type=Path,
        default=None,
        help="reuse the corpus, tokenizer and packed file of this work directory",
    )
    model.set_defaults(func=_model)

    bench = sub.add_parser("bench", help="measure speed and quality (prints JSON)")
    bench.add_argument("name", choices=BENCHMARKS)
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(
        func=lambda a: _module_main(BENCH_MODULES.get(a.name, f"benchmarks.{a.name}"), a.rest)
    )

    evaluate = sub.add_parser("eval", help="score a model (prints JSON)")
    evaluate.add_argument("name", choices=EVALS)
    evaluate.add_argument("rest", nargs=argparse.REMAINDER)
    evaluate.set_defaults(func=_evaluate)

    sub.add_parser("doctor", help="check the installation").set_defaults(func=_doctor)
    from lsp_server.usage.cli import DESCRIPTION, add_arguments

    stats = sub.add_parser(
        "stats", help="usage and cost report, and cache statistics", description=DESCRIPTION
    )
    add_arguments(stats)
    stats.set_defaults(func=_stats)

    settings = sub.add_parser("settings", help="describe the settings")
    settings_sub = settings.add_subparsers(dest="settings_command", required=True)
    settings_sub.add_parser("schema", help="print the settings' JSON Schema")
    settings.set_defaults(func=_settings)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))
