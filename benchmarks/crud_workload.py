"""The scripted CRUD workload of `flashcode bench cache`: what the editor session types.

For each entity (user, order, product, ..., order_item), a repository class, a service class and
an API-handler class, in editing order, appended to repositories.py, services.py and handlers.py.
models.py (the entities and an in-memory database) and web.py (the request types) exist before
the work starts. The classes are written the same way for every entity, as such code is: that
regularity is what the pattern layer of the cache learns from the first entities and answers for
the next ones. The texts are plain strings, so every run types exactly the same session.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EntitySpec:
    words: tuple[str, ...]  # ("order", "item")
    plural_last: str  # the plural of the last word
    fields: tuple[tuple[str, str], ...]  # (name, type) besides id

    @property
    def snake(self) -> str:
        return "_".join(self.words)

    @property
    def plural(self) -> str:
        return "_".join((*self.words[:-1], self.plural_last))

    @property
    def pascal(self) -> str:
        return "".join(word.capitalize() for word in self.words)


ENTITIES = (
    EntitySpec(("user",), "users", (("name", "str"), ("email", "str"))),
    EntitySpec(("order",), "orders", (("customer_id", "int"), ("total", "float"))),
    EntitySpec(("product",), "products", (("name", "str"), ("price", "float"))),
    EntitySpec(("invoice",), "invoices", (("order_id", "int"), ("amount", "float"))),
    EntitySpec(("customer",), "customers", (("name", "str"), ("phone", "str"))),
    EntitySpec(("category",), "categories", (("title", "str"), ("parent_id", "int"))),
    EntitySpec(("shipment",), "shipments", (("order_id", "int"), ("carrier", "str"))),
    EntitySpec(("order", "item"), "items", (("order_id", "int"), ("quantity", "int"))),
)

DATABASE = '''

class Database:
    """Tables of entities by id, in memory."""

    def __init__(self) -> None:
        self.tables: dict[type, dict[int, Any]] = {}

    def next_id(self, model: type) -> int:
        return len(self.tables.get(model, {})) + 1

    def get(self, model: type, key: int) -> Any:
        return self.tables.get(model, {}).get(key)

    def all(self, model: type) -> list[Any]:
        return list(self.tables.get(model, {}).values())

    def add(self, item: Any) -> None:
        self.tables.setdefault(type(item), {})[item.id] = item

    def delete(self, model: type, key: int) -> bool:
        return self.tables.get(model, {}).pop(key, None) is not None
'''

WEB = '''"""What the API handlers receive and return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Response:
    status: int
    body: dict[str, Any]
'''


def models_file(entities: tuple[EntitySpec, ...]) -> str:
    parts = [
        '"""The entities, and the in-memory database the repositories use."""\n\n'
        "from __future__ import annotations\n\n"
        "from dataclasses import asdict, dataclass\n"
        "from typing import Any\n"
    ]
    for e in entities:
        fields = "".join(f"    {name}: {kind}\n" for name, kind in e.fields)
        parts.append(
            f"\n\n@dataclass\nclass {e.pascal}:\n    id: int\n{fields}\n"
            "    def to_dict(self) -> dict[str, Any]:\n        return asdict(self)\n"
        )
    return "".join(parts) + DATABASE


def _import(module: str, names: list[str]) -> str:
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in sorted(names)) + ")\n"


def headers(entities: tuple[EntitySpec, ...]) -> dict[str, str]:
    """What each typed file holds before the session starts."""
    models = [e.pascal for e in entities]
    future = '"""{doc}"""\n\nfrom __future__ import annotations\n\n'
    return {
        "repositories.py": future.format(doc="Data access, one repository per entity.")
        + _import("models", [*models, "Database"]),
        "services.py": future.format(doc="Business rules, one service per entity.")
        + _import("models", models)
        + _import("repositories", [f"{m}Repository" for m in models]),
        "handlers.py": future.format(doc="HTTP handlers, one per entity.")
        + _import("services", [f"{m}Service" for m in models])
        + "from web import Request, Response\n",
    }


def repository(e: EntitySpec) -> str:
    s, p, c = e.snake, e.plural, e.pascal
    params = ", ".join(f"{name}: {kind}" for name, kind in e.fields)
    kwargs = ", ".join(f"{name}={name}" for name, _ in e.fields)
    return f"""

class {c}Repository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get_{s}(self, {s}_id: int) -> {c} | None:
        return self.db.get({c}, {s}_id)

    def list_{p}(self) -> list[{c}]:
        return self.db.all({c})

    def delete_{s}(self, {s}_id: int) -> bool:
        return self.db.delete({c}, {s}_id)

    def create_{s}(self, {params}) -> {c}:
        {s} = {c}(id=self.db.next_id({c}), {kwargs})
        self.db.add({s})
        return {s}
"""


def service(e: EntitySpec) -> str:
    s, p, c = e.snake, e.plural, e.pascal
    params = ", ".join(f"{name}: {kind}" for name, kind in e.fields)
    args = ", ".join(name for name, _ in e.fields)
    return f"""

class {c}Service:
    def __init__(self, repository: {c}Repository) -> None:
        self.repository = repository

    def get_{s}(self, {s}_id: int) -> {c}:
        {s} = self.repository.get_{s}({s}_id)
        if {s} is None:
            raise KeyError(f"{s} {{{s}_id}} not found")
        return {s}

    def list_{p}(self) -> list[{c}]:
        return self.repository.list_{p}()

    def delete_{s}(self, {s}_id: int) -> None:
        if not self.repository.delete_{s}({s}_id):
            raise KeyError(f"{s} {{{s}_id}} not found")

    def create_{s}(self, {params}) -> {c}:
        return self.repository.create_{s}({args})
"""


def handler(e: EntitySpec) -> str:
    s, p, c = e.snake, e.plural, e.pascal
    return f"""

class {c}Handler:
    def __init__(self, service: {c}Service) -> None:
        self.service = service

    def get(self, request: Request) -> Response:
        {s}_id = int(request.params["{s}_id"])
        try:
            {s} = self.service.get_{s}({s}_id)
        except KeyError:
            return Response(404, {{"error": "{s} not found"}})
        return Response(200, {s}.to_dict())

    def list(self, request: Request) -> Response:
        {p} = self.service.list_{p}()
        return Response(200, {{"{p}": [{s}.to_dict() for {s} in {p}]}})

    def delete(self, request: Request) -> Response:
        self.service.delete_{s}(int(request.params["{s}_id"]))
        return Response(204, {{}})

    def post(self, request: Request) -> Response:
        {s} = self.service.create_{s}(**request.body)
        return Response(201, {s}.to_dict())
"""


def script(entities: tuple[EntitySpec, ...]) -> list[tuple[str, str]]:
    """(file, text) edits in editing order: per entity, its repository, service and handler."""
    edits = []
    for e in entities:
        edits += [
            ("repositories.py", repository(e)),
            ("services.py", service(e)),
            ("handlers.py", handler(e)),
        ]
    return edits
