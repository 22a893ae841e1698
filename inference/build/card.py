"""MODEL_CARD.md for the shipped model, from the run's own records and the measured scores."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.suffix in (".onnx", ".data"))


def _last(log: list[dict[str, Any]], key: str) -> Any:
    return next((r[key] for r in reversed(log) if key in r), None)


def data_lines(report: dict[str, Any]) -> list[str]:
    """The card's data section from the corpus report (corpus stage, plus pack's token counts)."""
    from inference.build.sources import EVAL_PROJECTS, VENDORED_DIRS

    tokens = (report.get("packed") or {}).get("train", {}).get("tokens_per_repo", {})
    rows = [
        "| source | version | licence | files kept | bytes kept | training tokens |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in report["sources"].items():
        count = tokens.get("cpython" if name == "stdlib" else name)
        rows.append(
            f"| {name} | {s['version']} | {s['licence']} | {s['files_kept']:,} | "
            f"{s['bytes_kept']:,} | {f'{count:,}' if count is not None else '-'} |"
        )
    d = report["dedup"]
    return [
        *rows,
        "",
        f"- Deduplication: {d['files_in']:,} files ({d['bytes_in']:,} bytes) read; exact copies"
        f" (whitespace-normalised hash) removed {d['exact_files']:,} files ({d['exact_bytes']:,}"
        f" bytes), near copies (MinHash LSH, 5-gram shingles, Jaccard 0.85) removed"
        f" {d['near_files']:,} files ({d['near_bytes']:,} bytes).",
        "- Never read: vendored copies ("
        + ", ".join(f"`{v}/`" for v in sorted(VENDORED_DIRS))
        + ") and the projects `flashcode eval repo` measures on: "
        + ", ".join(EVAL_PROJECTS)
        + ".",
        f"- Validation, held out by whole package: {', '.join(report['validation']['groups'])}"
        f" ({report['validation']['files']:,} files, {report['validation']['bytes']:,} bytes).",
        "- Rows in the Qwen2.5-Coder repository format (`<|repo_name|>`, `<|file_sep|>path`),"
        " files of one directory together.",
    ]


def write_card(
    work: Path, out: Path, scores: dict[str, Any], notes: str = "", ablations: str = ""
) -> Path:
    config = json.loads((work / "train_config.json").read_text())
    state_file = work / "train_state.json"
    if not state_file.exists():
        state_file = work / "snapshot_state.json"
    state = json.loads(state_file.read_text())
    log = [json.loads(line) for line in (work / "train_log.jsonl").read_text().splitlines()]
    shape, fim = config["shape"], config["fim"]
    # by tokens seen: the final evaluation repeats a checkpoint's when no step came between
    curve = {r["tokens"]: round(r["val_loss"], 3) for r in log if "val_loss" in r}
    val_curve = list(curve.items())
    sizes = {"int4": _size(out), "int8": _size(out / "int8") if (out / "int8").exists() else None}
    fp32 = work / "onnx" / "fp32"
    if fp32.exists():
        sizes["fp32"] = _size(fp32)
    he = scores.get("humaneval", {})
    nl = scores.get("nextline", {})
    ag = scores.get("agreement", {})
    lines = [
        "# flashcode-tiny",
        "",
        "The embedded default model of flashcode: a small decoder trained from scratch on this",
        "machine, so that `flashcode serve` works with no download. It completes Python best.",
        "",
        "## Data and license",
        "",
        "- The CPython standard library source of Python "
        + platform.python_version()
        + " (`Lib/`,",
        "  its tests included; never site-packages), deduplicated by content: PSF License 2.0.",
        "- 2% of files, chosen by a hash of their path, are held out for validation and the",
        "  next-line score.",
        "- The weights are released with flashcode under the same terms as the project.",
        "",
        "## Model",
        "",
        "- Architecture: Qwen2 (transformers `Qwen2ForCausalLM`), "
        f"{shape['num_layers']} layers, hidden "
        f"{shape['hidden_size']}, {shape['num_heads']} "
        f"query heads / {shape['num_kv_heads']} KV heads, "
        f"MLP {shape['intermediate_size']}, tied embeddings.",
        f"- Parameters: {config['parameters']:,}.",
        "- Tokenizer: byte-level BPE, vocabulary "
        f"{shape['vocab_size']:,}, trained on the same data, "
        "with Qwen2.5-Coder's special tokens (`<|fim_prefix|>`, "
        "`<|fim_suffix|>`, `<|fim_middle|>`, "
        "`<|endoftext|>`, `<|fim_pad|>`, `<|file_sep|>`, `<|repo_name|>`).",
        f"- Context: {shape['context_length']} tokens.",
        "",
        "## Training",
        "",
        f"- Fill-in-the-middle rate {fim['fim_rate']} (SPM "
        f"share {fim['spm_rate']}, empty-suffix share "
        f"{fim.get('empty_suffix_rate', 0)}, line-aligned "
        f"share {fim['line_span_rate']}, in-line share {fim.get('in_line_rate', 0)}), "
        f"end-of-middle loss weight {fim.get('end_of_middle_weight', 1)}, windows of "
        f"{shape['context_length']} tokens.",
        ("- Muon for the hidden matrices and " if config.get("optimizer") == "muon" else "- ")
        + f"AdamW (betas 0.9/0.95, weight decay {config['weight_decay']}), peak LR {config['lr']}, "
        f"warmup {config['warmup_steps']} steps, then "
        + (
            f"stable, and a 1 - sqrt decay to {config['min_lr_ratio']} of peak over the last "
            f"{config['decay_minutes']:g} minutes"
            if config.get("decay_minutes")
            else "stable at the peak (not decayed yet: a later run with --decay-minutes does)"
            if "decay_minutes" in config
            else f"cosine to {config['min_lr_ratio']} of peak over wall-clock time"  # the v1 run
        )
        + f", batch {config['batch_size']} x {shape['context_length']}, seed {config['seed']}.",
        f"- Tokens seen: {state['tokens']:,} ({state['step']:,} steps, epoch {state['epoch']}).",
        f"- Training time: {state['elapsed_s'] / 60:.0f} minutes on a 2-core x86_64 CPU (AMD EPYC, "
        "AVX2), torch 2.13 CPU build, shared with other work on the same machine.",
        f"- Validation loss (nats/token): {_last(log, 'val_loss'):.3f}. Curve (tokens, loss): "
        + ", ".join(f"({t:,}, {v})" for t, v in val_curve[-8:])
        + "."
        + (
            f" Validation bits per byte: {_last(log, 'val_bpb'):.3f}."
            if _last(log, "val_bpb") is not None
            else ""
        ),
        "",
        "## Files and sizes",
        "",
        "Exported with onnxruntime-genai's model builder (GroupQueryAttention, KV cache).",
        "",
        "| variant | bytes (graph + weights) | where |",
        "| --- | --- | --- |",
        f"| int4 (MatMulNBits, block 32, k-quant; the tied embedding and head int8) "
        f"| {sizes['int4']:,} | `inference/models/default/` |",
    ]
    if sizes.get("int8"):
        lines.append(
            f"| int8 (MatMulNBits, block 32) | {sizes['int8']:,} "
            "| `inference/models/default/int8/` |"
        )
    if sizes.get("fp32"):
        lines.append(
            f"| fp32 | {sizes['fp32']:,} | not shipped (rebuild with `flashcode model build`) |"
        )
    lines += [
        "",
        "## Scores",
        "",
        "Greedy, through flashcode's own prompt builder and post-processing (what an editor gets).",
        "",
        "| measure | value | command |",
        "| --- | --- | --- |",
    ]
    if he:
        single, multi = he["single_line"], he["multi_line"]
        lines += [
            f"| HumanEval single-line infilling, exact match ({single['tasks']} tasks) | "
            f"{he['single_line_exact_match']:.3f} | `flashcode eval humaneval-infilling --json` |",
            "| HumanEval single-line infilling, pass@1 | "
            f"{he['single_line_pass_at_1']:.3f} | same |",
            "| HumanEval multi-line infilling, exact match "
            f"({multi['tasks']} of 5,815 tasks, evenly spread) | "
            f"{he['multi_line_exact_match']:.3f} | same |",
            f"| HumanEval multi-line infilling, pass@1 | {he['multi_line_pass_at_1']:.3f} | same |",
        ]
    if nl:
        lines.append(
            f"| next-line exact match, held-out stdlib ({nl['samples']} lines) | "
            f"{nl['next_line_exact_match']:.3f} | `flashcode eval nextline --json` |"
        )
    if ag:
        lines += [
            "| int4 vs fp32 greedy token agreement "
            f"({ag['tokens_compared']} tokens, teacher-forced) | "
            f"{ag['greedy_token_agreement']:.3f} | `flashcode "
            f"eval agreement --reference runs/{work.name}/onnx/fp32` |",
            f"| int4 / fp32 file size | {ag['size_ratio']:.3f} | same |",
        ]
    report_file = work / "corpus" / "report.json"
    if report_file.exists():  # the next model's corpus replaces the stdlib-only description
        start = lines.index("## Data and license") + 2
        end = lines.index("## Model") - 1
        report = json.loads(report_file.read_text())
        lines[start:end] = [
            *data_lines(report),
            "- The weights are released with flashcode under the same terms as the project.",
        ]
    if ablations:
        lines += [
            "",
            "## Ablations",
            "",
            "Each row trained from scratch on this corpus for the same tokens, stable learning rate"
            " after the same warmup (`python -m inference.build.ablate`):",
            "",
            ablations.strip(),
        ]
    if notes:
        body = notes.strip()
        if body.startswith("# "):  # the notes file's own title, not the card's
            body = body.partition("\n")[2].strip()
        lines += ["", "## Notes", "", body]
    path = out / "MODEL_CARD.md"
    path.write_text("\n".join(lines) + "\n")
    return path
