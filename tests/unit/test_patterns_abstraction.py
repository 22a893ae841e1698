"""Entity names: finding them, abstracting their variants, writing them out for another entity."""

from __future__ import annotations

import pytest

from prompts.entities import (
    Entity,
    abstract,
    find_entity,
    has_placeholder_chars,
    instantiate,
    pluralize,
    singularize,
    split_identifier,
)

USER = Entity(("user",))
ORDER_ITEM = Entity(("order", "item"))
CATEGORY = Entity(("category",))


def rewrite(text: str, source: Entity, target: Entity, language: str = "python") -> str:
    return instantiate(abstract(text, source, language), target)


@pytest.mark.parametrize(
    ("singular", "plural"),
    [
        ("user", "users"),
        ("category", "categories"),
        ("address", "addresses"),
        ("status", "statuses"),
        ("box", "boxes"),
        ("batch", "batches"),
        ("key", "keys"),
        ("person", "people"),
        ("case", "cases"),
    ],
)
def test_plural_and_singular_are_inverse(singular: str, plural: str) -> None:
    assert pluralize(singular) == plural
    assert singularize(plural) == singular


def test_identifiers_split_into_words_in_every_convention() -> None:
    assert split_identifier("get_user_by_id") == ["get", "user", "by", "id"]
    assert split_identifier("getUserByID") == ["get", "user", "by", "id"]
    assert split_identifier("HTTPUserService") == ["http", "user", "service"]
    assert split_identifier("USER_TABLE") == ["user", "table"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "get_user user_id users list_users",
            "get_order_item order_item_id order_items list_order_items",
        ),
        ("UserService Users class User", "OrderItemService OrderItems class OrderItem"),
        ("USER_TABLE MAX_USERS", "ORDER_ITEM_TABLE MAX_ORDER_ITEMS"),
        ("getUser userId listUsers", "getOrderItem orderItemId listOrderItems"),
        ('route("/users/{user_id}")', 'route("/order-items/{order_item_id}")'),
    ],
)
def test_every_variant_is_rewritten_for_a_two_word_entity(source: str, expected: str) -> None:
    assert rewrite(source, USER, ORDER_ITEM) == expected


def test_plurals_follow_the_new_entity() -> None:
    assert rewrite("users = self.list_users()", USER, CATEGORY) == (
        "categories = self.list_categories()"
    )
    assert rewrite("for item in order_items:", ORDER_ITEM, USER) == "for item in users:"


def test_names_that_only_partly_contain_the_entity_are_left_alone() -> None:
    text = "username superuser userspace reuser users_count UserWarning"
    assert rewrite(text, USER, CATEGORY) == (
        "username superuser userspace reuser categories_count CategoryWarning"
    )


def test_a_lone_lowercase_name_takes_the_language_convention() -> None:
    assert rewrite("user = load(user)", USER, ORDER_ITEM, "python") == (
        "order_item = load(order_item)"
    )
    assert rewrite("const user = load(user);", USER, ORDER_ITEM, "javascript") == (
        "const orderItem = load(orderItem);"
    )


def test_a_template_holds_no_entity_name_only_placeholders() -> None:
    template = abstract("return self.db.get(User, user_id)", USER, "python")
    assert "user" not in template.lower()
    assert has_placeholder_chars(template)
    assert not has_placeholder_chars("return self.db.get(User, user_id)")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["class OrderRepository(BaseRepository):"], ("order",)),
        (["class InMemoryOrderItemStore:"], ("order", "item")),
        (["    def list_categories(self):"], ("category",)),
        (["    def getInvoiceById(self, id):"], ("invoice",)),
        (["        total = compute(shipment_id)"], ("shipment",)),
        # The class says what the code is about even where another entity is mentioned.
        (["class OrderService:", "    def get(self, user_id):"], ("order",)),
    ],
)
def test_the_entity_is_found_from_class_function_and_id_names(
    lines: list[str], expected: tuple[str, ...]
) -> None:
    entity = find_entity(lines)
    assert entity is not None and entity.words == expected


@pytest.mark.parametrize(
    "lines",
    [
        ["def main():", "    print(args)"],
        ["class Config:", "    def __init__(self, data):"],
        ["for item in items:", "    total += item.value"],
    ],
)
def test_generic_code_names_no_entity(lines: list[str]) -> None:
    assert find_entity(lines) is None
