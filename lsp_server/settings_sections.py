"""The settings' types and sections: the choices, the `about` metadata, and each nested section.

lsp_server/settings.py builds the top-level Settings from these and merges, checks and describes
the whole tree; this module only declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# The CLI's --device choices are these too; inference/engine.py keeps its own copy (VALID_DEVICES)
# because inference never imports lsp_server.
Device = Literal["auto", "cpu", "cuda"]
LogLevel = Literal["error", "warning", "info", "debug"]
Backend = Literal["local", "remote"]
# suffix: the server applies its own FIM template to prompt + suffix (Ollama, llama-cpp-python);
# raw: the prompt is FIM-templated here, for servers without `suffix` (vLLM, llama-server, TGI).
RemoteFim = Literal["suffix", "raw"]
# prompt: token healing's forced text ends the prompt; grammar: the answer is held to start with
# it by a GBNF `grammar` (llama.cpp's llama-server and llama-cpp-python take one).
RemoteHealing = Literal["prompt", "grammar"]
# prompts.fim's template names (a unit test keeps the two equal); "" = detect from the tokenizer.
FimTemplateName = Literal[
    "", "qwen2.5-coder", "starcoder", "deepseek-coder", "codellama", "codegemma"
]
# prompts.retrieval's scorers (a unit test keeps the two equal), or "off".
Retrieval = Literal["bm25", "jaccard", "off"]
DEFAULT_SECRET_GLOBS = (".env", ".env.*", "*.pem", "*.key", "*secret*", "*credentials*", "id_rsa*")


def about(description: str, *, between: tuple[int, int] | None = None) -> dict[str, Any]:
    """A field's metadata: what it does in one line, and for a number the inclusive range of values
    that work (outside it the default is used)."""
    return {"description": description, "between": between}


@dataclass(kw_only=True)
class CacheSettings:
    enabled: bool = field(
        default=True,
        metadata=about("Serve recurring code from a disk cache without running the model."),
    )
    max_size_mb: int = field(
        default=256,
        metadata=about("Size limit of the completion cache on disk, in MB.", between=(1, 65_536)),
    )
    directory: str = field(
        default="",
        metadata=about("Directory of the completion cache. Empty: the user cache directory."),
    )
    exclude_globs: list[str] = field(
        default_factory=list,
        metadata=about(
            "Files matching these globs are never cached, on top of the built-in secret"
            " patterns (.env, *.pem, *.key, ...)."
        ),
    )
    learn_workspace: bool = field(
        default=True,
        metadata=about(
            "At start, learn CRUD patterns from the workspace's source files, not only from"
            " open editors."
        ),
    )


@dataclass(kw_only=True)
class WorkspaceSettings:
    enabled: bool = field(
        default=True,
        metadata=about(
            "Index the workspace's source files (kept in the cache directory) so that"
            " completions can draw on the user's own code."
        ),
    )
    mixing: bool = field(
        default=True,
        metadata=about(
            "At each step of the model, mix in what followed the longest match of the code just"
            " written in the buffer, the open files and (with workspace.enabled) the workspace."
        ),
    )
    # jaccard by default: on `flashcode eval retrieval` (300 holes) both scorers gave the same
    # exact match (0.190), Jaccard brought the answer into the prompt more often (0.103 vs 0.090)
    # and builds in half BM25's time (`flashcode bench retrieval`).
    retrieval: Retrieval = field(
        default="jaccard",
        metadata=about(
            "How snippets of the workspace's other files are chosen for the prompt: bm25 or"
            " jaccard (identifier overlap) over sliding windows of lines; off: from the open"
            " files only."
        ),
    )
    index_budget_mb: int = field(
        default=200,
        metadata=about(
            "Most memory the workspace index may use, in MB; past it, the newest files are kept.",
            between=(16, 4096),
        ),
    )


@dataclass(kw_only=True)
class TestSettings:
    run_generated: bool = field(
        default=True,
        metadata=about("Run generated unit tests once and keep only those that pass."),
    )
    timeout_seconds: int = field(
        default=60,
        metadata=about(
            "Time limit of one run of the generated tests, in seconds.", between=(1, 3600)
        ),
    )
    python: str = field(
        default="",
        metadata=about(
            "Python interpreter that runs the generated tests. Empty: the one running the server."
        ),
    )


@dataclass(kw_only=True)
class UsageSettings:
    enabled: bool = field(
        default=True,
        metadata=about(
            "Count completions requested, shown and accepted, tokens and latency, in the"
            " completion cache's directory (never any code text). `flashcode stats` reports them."
        ),
    )
    price_per_million_tokens: float = field(
        default=0.30,
        metadata=about(
            "Price of a hosted model per million tokens, in USD: the usage report's cost avoided"
            " counts the tokens the local model processed at this price.",
            between=(0, 1000),
        ),
    )


@dataclass(kw_only=True)
class RemoteSettings:
    url: str = field(
        default="",
        metadata=about(
            "Base URL of the OpenAI-compatible server, e.g. http://gpu-box:8000/v1. Used only"
            " when backend is remote."
        ),
    )
    model: str = field(
        default="",
        metadata=about("Model name sent to the server. Empty: the first one it lists."),
    )
    api_key_env: str = field(
        default="",
        metadata=about(
            "Name of the environment variable holding the server's API key (never the key"
            " itself). Empty: no key."
        ),
    )
    timeout_ms: int = field(
        default=5000,
        metadata=about(
            "Longest wait for the server to answer, or to send the next part of an answer, in"
            " milliseconds.",
            between=(100, 600_000),
        ),
    )
    fim: RemoteFim = field(
        default="suffix",
        metadata=about(
            "suffix: send prompt and suffix, the server applies its FIM template (Ollama,"
            " llama-cpp-python). raw: send the FIM prompt built here (vLLM, llama-server, TGI)."
        ),
    )
    healing: RemoteHealing = field(
        default="prompt",
        metadata=about(
            "After a partial word: prompt: send the typed part at the prompt's end. grammar:"
            " hold the answer to start with it by a GBNF grammar, as the local engine does"
            " (llama-server, llama-cpp-python)."
        ),
    )
