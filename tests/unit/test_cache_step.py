"""The cache steps of a completion: order of the layers, what is stored, and what never is.

A real disk cache in a temporary directory; the prompt is built by hand (no model, no tokenizer)
because the steps only read its ids, snippets and flags. `Steps` drives the three cache steps
(pattern, exact, store) the way the pipeline calls them, one request at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from inference.scheduler import GenerationRequest
from lsp_server.completion.cache import CacheState
from lsp_server.completion.context import CompletionContext, build_context
from lsp_server.completion.exact_step import ExactLookup, exact_lookup
from lsp_server.completion.pattern_step import pattern_hit
from lsp_server.completion.postprocess_step import shown_text
from lsp_server.completion.store_step import store_answer
from lsp_server.settings import CacheSettings, Settings
from prompts.budget import CompletionPrompt
from prompts.context import Document

USERS = """class UserRepository:
    def __init__(self, db):
        self.db = db

    def get_user(self, user_id):
        return self.db.get(User, user_id)
"""
ORDERS = (
    "from models import Order\n\n\nclass OrderRepository:\n    def __init__(self, db):\n        "
)


def doc(name: str, text: str) -> Document:
    return Document(
        uri=f"file:///work/{name}", path=f"/work/{name}", language_id="python", text=text
    )


def prompt(ids: tuple[int, ...] = (1, 2, 3), snippets: tuple[str, ...] = ()) -> CompletionPrompt:
    return CompletionPrompt(
        token_ids=ids,
        prefix="",
        suffix="",
        header="",
        snippets=snippets,
        multiline=False,
        language="python",
        stop_token_ids=frozenset(),
        stop_strings=(),
    )


def request(ids: tuple[int, ...] = (1, 2, 3)) -> GenerationRequest:
    return GenerationRequest(prompt_ids=ids, max_new_tokens=16)


@dataclass
class Ticket:
    """One lookup's outcome, and the store the pipeline would run after the model answered."""

    layer: str | None
    text: str | None
    state: CacheState
    context: CompletionContext
    lookup: ExactLookup | None = None

    def store(self, raw: str, shown: str, finish_reason: str) -> None:
        if self.lookup is not None:
            store_answer(self.state, self.context, self.lookup, raw, shown, finish_reason)


def context(
    document: Document,
    offset: int,
    others: Sequence[Document],
    settings: CacheSettings,
    multiline: bool | None = None,
) -> CompletionContext:
    built = build_context(document, offset, others, Settings(cache=settings))
    return built if multiline is None else dataclasses.replace(built, multiline=multiline)


class Steps(CacheState):
    """The cache state with the pipeline's calls around it; settings apply before each call,
    as the server applies them whenever they change."""

    def lookup_pattern(
        self,
        document: Document,
        offset: int,
        others: Sequence[Document],
        multiline: bool,
        settings: CacheSettings,
    ) -> Ticket:
        self.configure(settings)
        request_context = context(document, offset, others, settings, multiline)
        hit = pattern_hit(self, request_context)
        return Ticket(hit.layer if hit else None, hit.text if hit else None, self, request_context)

    def lookup(
        self,
        document: Document,
        offset: int,
        others: Sequence[Document],
        built: CompletionPrompt,
        generation: GenerationRequest,
        fingerprint: str,
        settings: CacheSettings,
    ) -> Ticket:
        self.configure(settings)
        request_context = context(document, offset, others, settings)
        found = exact_lookup(self, request_context, built, generation, fingerprint)
        if found.hit is None:
            return Ticket(None, None, self, request_context, found)
        text = shown_text(found.hit.text, request_context.prefix, request_context.suffix, built)
        return Ticket("exact", text, self, request_context)


def step_in(tmp_path: Path) -> tuple[Steps, CacheSettings]:
    return Steps(), CacheSettings(directory=str(tmp_path / "cache"))


def test_the_models_answer_is_served_again_for_the_same_prompt(tmp_path: Path) -> None:
    step, settings = step_in(tmp_path)
    document = doc("calc.py", "def add(a, b):\n    return ")
    offset = len(document.text)
    miss = step.lookup(document, offset, [], prompt(), request(), "model-1", settings)
    assert miss.layer is None
    miss.store("a + b\n\ndef sub(a, b):", "a + b", "stop")
    hit = step.lookup(document, offset, [], prompt(), request(), "model-1", settings)
    # The raw answer is post-processed for the cursor as it is now: one line here.
    assert (hit.layer, hit.text) == ("exact", "a + b")
    other_model = step.lookup(document, offset, [], prompt(), request(), "model-2", settings)
    assert other_model.layer is None
    step.close()


def test_an_answer_cut_short_by_the_deadline_is_not_stored(tmp_path: Path) -> None:
    step, settings = step_in(tmp_path)
    document = doc("calc.py", "def add(a, b):\n    return ")
    ticket = step.lookup(document, len(document.text), [], prompt(), request(), "m", settings)
    ticket.store("a +", "a +", "deadline")
    again = step.lookup(document, len(document.text), [], prompt(), request(), "m", settings)
    assert again.layer is None
    step.close()


def test_an_open_document_teaches_a_pattern_that_answers_without_the_model(
    tmp_path: Path,
) -> None:
    step, settings = step_in(tmp_path)
    orders = doc("orders.py", ORDERS)
    ticket = step.lookup_pattern(
        orders, len(ORDERS), [doc("users.py", USERS)], prompt().multiline, settings
    )
    assert (ticket.layer, ticket.text) == ("pattern", "self.db = db")
    stats = step.stats()
    assert stats["session"]["pattern"]["hits"] == 1
    assert stats["session"]["exact"]["misses"] == 0  # a pattern hit needs no prompt
    step.close()


def test_nothing_is_learned_looked_up_or_stored_for_a_secret_file(tmp_path: Path) -> None:
    step, settings = step_in(tmp_path)
    secret = doc("secrets.py", USERS + "\nAPI_TOKEN = 'tok-123456789'\n")
    orders = doc("orders.py", ORDERS)
    # The secret file is open, but its code teaches nothing...
    ticket = step.lookup_pattern(orders, len(ORDERS), [secret], prompt().multiline, settings)
    assert ticket.layer is None
    # ...and completions inside it are neither looked up nor stored.
    assert step.lookup_pattern(secret, len(secret.text), [], False, settings).layer is None
    inside = step.lookup(secret, len(secret.text), [], prompt(), request(), "m", settings)
    inside.store("print(API_TOKEN)", "print(API_TOKEN)", "stop")
    again = step.lookup(secret, len(secret.text), [], prompt(), request(), "m", settings)
    assert again.layer is None
    assert step.stats()["entries"]["exact"] == 0
    step.close()
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert b"tok-123456789" not in path.read_bytes()


def test_a_prompt_quoting_a_secret_file_is_not_stored(tmp_path: Path) -> None:
    step, settings = step_in(tmp_path)
    secret = doc(".env", "DATABASE_PASSWORD=hunter2hunter2\n")
    document = doc("settings.py", "import os\n\npassword = ")
    quoting = prompt(snippets=("# Path: .env\n# DATABASE_PASSWORD=hunter2hunter2\n",))
    ticket = step.lookup(document, len(document.text), [secret], quoting, request(), "m", settings)
    ticket.store("'hunter2hunter2'", "'hunter2hunter2'", "stop")
    assert step.stats()["entries"]["exact"] == 0
    step.close()


def test_user_globs_exclude_more_files(tmp_path: Path) -> None:
    step = Steps()
    settings = CacheSettings(directory=str(tmp_path / "cache"), exclude_globs=["*.sql"])
    document = doc("dump.sql", "SELECT ")
    ticket = step.lookup(document, 7, [], prompt(), request(), "m", settings)
    ticket.store("1;", "1;", "stop")
    assert step.stats()["entries"]["exact"] == 0
    step.close()


def test_switching_the_cache_off_closes_it_and_answers_nothing(tmp_path: Path) -> None:
    step, settings = step_in(tmp_path)
    document = doc("calc.py", "def add(a, b):\n    return ")
    step.lookup(document, len(document.text), [], prompt(), request(), "m", settings).store(
        "a + b", "a + b", "stop"
    )
    off = CacheSettings(enabled=False, directory=settings.directory)
    ticket = step.lookup(document, len(document.text), [], prompt(), request(), "m", off)
    assert ticket.layer is None
    assert step.stats() == {"enabled": False}
    back_on = step.lookup(document, len(document.text), [], prompt(), request(), "m", settings)
    assert back_on.layer == "exact"
    step.close()


def test_a_broken_cache_never_breaks_the_completion(tmp_path: Path) -> None:
    step, settings = step_in(tmp_path)
    document = doc("calc.py", "def add(a, b):\n    return ")
    step.configure(settings)
    database = tmp_path / "cache" / "exact" / "cache.db"
    step.close()
    for extra in database.parent.glob("cache.db-*"):
        extra.unlink()
    database.write_bytes(b"garbage" * 1000)
    warnings: list[str] = []
    step.on_warning = warnings.append
    ticket = step.lookup(document, len(document.text), [], prompt(), request(), "m", settings)
    assert ticket.layer is None
    assert warnings and "moved it to" in warnings[0]
    ticket.store("a + b", "a + b", "stop")
    again = step.lookup(document, len(document.text), [], prompt(), request(), "m", settings)
    assert again.layer == "exact"
    step.close()
