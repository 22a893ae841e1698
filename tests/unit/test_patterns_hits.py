"""Pattern hits: code written for one entity completes the same code for another, and only when
the result is something a user would accept."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from prompts.pattern_checks import complete
from prompts.patterns import PatternExample, PatternLearner, example_from_completion, mine, site_at

MODELS = """from dataclasses import dataclass


@dataclass
class User:
    id: int
    name: str
    email: str


@dataclass
class Order:
    id: int
    customer_id: int
    total: float
"""

USER_REPOSITORY = """from models import Order, User


class UserRepository:
    def __init__(self, db):
        self.db = db

    def get_user(self, user_id):
        return self.db.get(User, user_id)

    def list_users(self):
        return self.db.all(User)

    def create_user(self, name, email):
        return self.db.add(User(name=name, email=email))
"""


class Store:
    """The pattern layer as a dict: what the disk cache does, for pure tests."""

    def __init__(self) -> None:
        self.entries: dict[str, list[PatternExample]] = {}

    def learn(self, examples: Sequence[PatternExample]) -> None:
        for example in examples:
            self.entries.setdefault(example.key, []).insert(0, example)

    def suggest(self, text: str, others: Sequence[str] = (), multiline: bool = False) -> str | None:
        site = site_at(text, len(text), "python")
        if site is None:
            return None
        return complete(
            site,
            self.entries.get(site.key, []),
            text=text,
            offset=len(text),
            multiline=multiline,
            other_texts=others,
        )


def learned_from(*texts: str) -> Store:
    store = Store()
    for text in texts:
        store.learn(mine(text, "python"))
    return store


def test_a_method_body_written_for_users_completes_the_one_for_orders() -> None:
    typing = USER_REPOSITORY + (
        "\n\nclass OrderRepository:\n    def __init__(self, db):\n        self.db = db\n\n"
        "    def get_order(self, order_id):\n        "
    )
    store = learned_from(USER_REPOSITORY)
    assert store.suggest(typing, [MODELS]) == "return self.db.get(Order, order_id)"


def test_code_in_another_open_document_teaches_this_one() -> None:
    # `def get_user` in one file's class teaches `def get_order` in another file's class.
    other = "class OrderRepository:\n    def __init__(self, db):\n        self.db = db\n\n    "
    store = learned_from(USER_REPOSITORY)
    assert store.suggest(other, [USER_REPOSITORY, MODELS]) == "def get_order(self, order_id):"


def test_the_start_of_the_line_already_typed_is_continued_with_plurals() -> None:
    typing = USER_REPOSITORY + (
        "\n\nclass OrderRepository:\n    def __init__(self, db):\n        self.db = db\n\n"
        "    def get_order(self, order_id):\n        return self.db.get(Order, order_id)\n\n"
        "    def li"
    )
    store = learned_from(USER_REPOSITORY)
    assert store.suggest(typing, [MODELS]) == "st_orders(self):"


def test_a_header_with_an_empty_body_gets_the_whole_block_when_multiline() -> None:
    typing = USER_REPOSITORY + "\n\nclass OrderRepository:\n    "
    store = learned_from(USER_REPOSITORY)
    assert store.suggest(typing, [MODELS], multiline=True) == (
        "def __init__(self, db):\n        self.db = db"
    )
    assert store.suggest(typing, [MODELS], multiline=False) == "def __init__(self, db):"


def test_a_completion_the_model_wrote_is_reused_for_the_next_entity() -> None:
    head = "class UserService:\n    def __init__(self, users):\n        self.users = users\n\n    "
    example = example_from_completion(head, len(head), "def count_users(self):", "python")
    assert example is not None
    store = Store()
    store.learn([example])
    other = head.replace("UserService", "OrderService").replace("users", "orders")
    assert store.suggest(other) == "def count_orders(self):"


def test_javascript_classes_are_patterns_too() -> None:
    users = (
        "class UserService {\n  constructor(repository) {\n    this.repository = repository;\n"
        "  }\n\n  getUser(userId) {\n    return this.repository.findUser(userId);\n  }\n}\n"
    )
    orders_repo = "class OrderRepository {\n  findOrder(id) {\n    return null;\n  }\n}\n"
    typing = (
        "class OrderService {\n  constructor(repository) {\n    this.repository = repository;\n"
        "  }\n\n  getOrder(orderId) {\n    "
    )
    store = Store()
    store.learn(mine(users, "javascript"))
    site = site_at(typing, len(typing), "javascript")
    assert site is not None
    text = typing + "\n  }\n}\n"
    found = complete(
        site,
        store.entries.get(site.key, []),
        text=text,
        offset=len(typing),
        multiline=False,
        other_texts=[users, orders_repo],
    )
    assert found == "return this.repository.findOrder(orderId);"


# --- what must not hit --------------------------------------------------------------------------


def test_different_surrounding_code_is_not_the_same_pattern() -> None:
    typing = (
        "class OrderRepository:\n    def __init__(self, session, clock):\n"
        "        self.session = session\n\n    def get_order(self, order_id):\n        "
    )
    store = learned_from(USER_REPOSITORY)
    assert store.suggest(typing, [MODELS]) is None


def test_a_name_that_exists_nowhere_is_not_offered() -> None:
    users = (
        "from schemas import UserSchema\n\n\nclass UserView:\n    def __init__(self, db):\n"
        "        self.db = db\n\n    def show(self, user_id):\n"
        "        return UserSchema.dump(self.db.get(user_id))\n"
    )
    typing = (
        "class OrderView:\n    def __init__(self, db):\n        self.db = db\n\n"
        "    def show(self, order_id):\n        "
    )
    store = learned_from(users)
    assert store.suggest(typing, [users]) is None  # there is no OrderSchema
    schemas = "class UserSchema:\n    pass\n\n\nclass OrderSchema:\n    pass\n"
    assert store.suggest(typing, [users, schemas]) == (
        "return OrderSchema.dump(self.db.get(order_id))"
    )


def test_a_library_name_that_contains_the_entity_is_not_rewritten_into_a_call() -> None:
    orders = (
        "class OrderRepository:\n    def __init__(self, query):\n        self.query = query\n\n"
        "    def list_orders(self):\n        return self.query.order_by(Order.id).all()\n"
    )
    typing = (
        "class UserRepository:\n    def __init__(self, query):\n        self.query = query\n\n"
        "    def list_users(self):\n        "
    )
    store = learned_from(orders)
    # `order_by` would become `user_by`, which nothing defines.
    assert store.suggest(typing, [orders, MODELS]) is None


def test_the_fields_of_one_entity_are_not_offered_for_another() -> None:
    typing = USER_REPOSITORY + (
        "\n\nclass OrderRepository:\n    def __init__(self, db):\n        self.db = db\n\n"
        "    def get_order(self, order_id):\n        return self.db.get(Order, order_id)\n\n"
        "    def list_orders(self):\n        return self.db.all(Order)\n\n    "
    )
    store = learned_from(USER_REPOSITORY)
    # create_user(self, name, email): Order has customer_id and total, not name and email.
    assert store.suggest(typing, [MODELS]) is None
    # Without the entities' classes in view there is nothing to tell them apart.
    assert store.suggest(typing) == "def create_order(self, name, email):"


def test_a_method_the_class_already_has_is_not_offered_again() -> None:
    typing = USER_REPOSITORY + (
        "\n\nclass OrderRepository:\n    def __init__(self, db):\n        self.db = db\n\n"
        "    def list_orders(self):\n        return self.db.all(Order)\n\n"
        "    def get_order(self, order_id):\n        return self.db.get(Order, order_id)\n\n    "
    )
    store = learned_from(USER_REPOSITORY)
    # After get_order the users' class went on with list_users; list_orders exists already.
    assert store.suggest(typing, [MODELS]) is None


def test_a_completion_that_does_not_parse_is_not_offered() -> None:
    head = "class UserStore:\n    def __init__(self, db):\n        self.db = db\n\n    "
    broken = example_from_completion(head, len(head), "def get_user(self, user_id:", "python")
    assert broken is not None
    store = Store()
    store.learn([broken])
    assert store.suggest(head.replace("User", "Order")) is None


def test_a_cursor_inside_a_line_with_text_after_it_is_no_site() -> None:
    text = USER_REPOSITORY + "\n\nclass OrderRepository:\n    def get_order(self, order_id): pass"
    cursor = text.index("(self, order_id)")
    assert site_at(text, cursor, "python") is None


def test_code_without_an_entity_is_no_site() -> None:
    text = "import sys\n\n\ndef main():\n    args = sys.argv[1:]\n    "
    assert site_at(text, len(text), "python") is None


# --- learning incrementally -----------------------------------------------------------------------


def test_the_learner_mines_each_change_once_and_skips_the_line_being_typed() -> None:
    learner = PatternLearner()
    first = learner.observe("file:///r.py", USER_REPOSITORY, "python")
    assert first
    assert learner.observe("file:///r.py", USER_REPOSITORY, "python") == []
    typing = USER_REPOSITORY + "\n\nclass OrderRepository:\n    def __init__(self, d"
    cursor_line = typing.count("\n")
    added = learner.observe("file:///r.py", typing, "python", cursor_line)
    assert all("(self, d" not in line for example in added for line in example.lines)
    finished = typing + "b):\n        self.db = db\n"
    again = learner.observe("file:///r.py", finished, "python", finished.count("\n"))
    assert any("def __init__(self, db):" in example.lines[0] for example in again)
    # Nothing above the changed class was mined again.
    assert all("get_user" not in "".join(example.lines) for example in again)


def _filler(count: int) -> str:
    """`count` lines of top-level code that name no entity."""
    return "".join(f"VALUE_{i} = {i}\n" for i in range(count))


def test_a_big_document_is_first_mined_around_the_cursor_and_then_where_it_changes() -> None:
    learner = PatternLearner()
    far = _filler(3 * PatternLearner.FIRST_LINES)
    text = (
        USER_REPOSITORY
        + "\n\n"
        + far
        + "\n\nclass ProductRepository:\n    def __init__(self, db):\n        self.db = db\n"
    )
    cursor_line = text.count("\n")
    learned = learner.observe("file:///big.py", text, "python", cursor_line)
    # The class at the cursor teaches; the one thousands of lines above is left for later.
    assert any("def __init__(self, db):" in example.lines[0] for example in learned)
    assert not any(example.entity == "user" for example in learned)
    # Moving to the top, the user's class is mined there.
    moved = learner.observe("file:///big.py", text, "python", 3)
    assert any(example.entity == "user" for example in moved)
    # An edit in the middle re-mines that place only.
    middle = len(USER_REPOSITORY) + 2 + len(_filler(PatternLearner.FIRST_LINES))
    edited = (
        text[:middle]
        + "class InvoiceRepository:\n    def __init__(self, db):\n        self.db = db\n"
        + text[middle:]
    )
    again = learner.observe("file:///big.py", edited, "python", 3)
    assert {example.entity for example in again} == {"invoice"}


def test_names_in_the_users_own_code_count_as_known_where_a_models_do_not() -> None:
    # users.py is not open: `db.get` appears in no visible text, only in what was learned.
    learned = [e for e in mine(USER_REPOSITORY, "python") if "self.db.get(" in e.lines[0]]
    orders = (
        "from models import Order\n\n\nclass OrderRepository:\n    def __init__(self, store):\n"
        "        self.store = store\n\n    def get_order(self, order_id):\n        "
    )
    site = site_at(orders, len(orders), "python")
    assert site is not None and learned
    as_model = [PatternExample(site.key, e.lines, e.entity) for e in learned]
    as_user = [PatternExample(site.key, e.lines, e.entity, written_by_user=True) for e in learned]
    suggest = functools.partial(complete, site, text=orders, offset=len(orders), multiline=False)
    assert suggest(as_user) == "return self.db.get(Order, order_id)"
    assert suggest(as_model) is None  # `db` and `get`: a model's guess at names nobody wrote
