"""Entities in code: what a piece of CRUD code is about, and how that name is written there.

Code written for one entity (`UserRepository.get_user(self, user_id)`) names it in many variants:
user, users, User, USER, user_id, UserService, getUser, /users/... `find_entity` reads the entity
from class and function names; `abstract` replaces every variant with a placeholder (one
private-use character per plural and style), and `instantiate` writes a template out again for
another entity (order, orders, Order, ORDER, order_id...). prompts.patterns builds pattern keys
and examples on top of this.

Pure text: no file system, no model, no parsing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from prompts.languages import code_rules

STYLES = ("snake", "kebab", "upper", "pascal", "camel")
# One private-use character per (number, style): code never contains them, so a stored
# template cannot be confused with the text around it.
_PLACEHOLDER_BASE = 0xE000
_PLACEHOLDER_COUNT = 2 * len(STYLES)
_PLACEHOLDER_CLASS = f"[{chr(_PLACEHOLDER_BASE)}-{chr(_PLACEHOLDER_BASE + _PLACEHOLDER_COUNT - 1)}]"
_PLACEHOLDER_RE = re.compile(_PLACEHOLDER_CLASS)


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_IRREGULAR_PLURALS = {
    "person": "people",
    "child": "children",
    "man": "men",
    "woman": "women",
    "mouse": "mice",
    "datum": "data",
}
_IRREGULAR_SINGULARS = {plural: singular for singular, plural in _IRREGULAR_PLURALS.items()}
# Words that name the role of a class rather than its entity: UserRepository -> user.
_ROLE_WORDS = _word_set(
    """repository repositories repo repos service services handler handlers controller
    controllers api apis resource resources router routes route view views viewset serializer
    serializers schema schemas model models manager managers store stores dao client clients
    factory factories admin form forms dto dtos entity record table adapter provider gateway
    mapper presenter endpoint endpoints crud test tests spec mixin base impl interface request
    response create update in out list detail details page query command event cache"""
)
_PREFIX_WORDS = _word_set("base abstract i test mock fake default generic in memory")
_VERBS = _word_set(
    """get list create update delete remove add find fetch save load insert upsert patch put
    post count search read write build make new set validate serialize deserialize handle
    register edit destroy show index retrieve archive restore"""
)
_CUT_WORDS = _word_set("by for with from in of to and or if on at")
# Names too generic to be an entity even where a CRUD-looking identifier contains them.
_NOT_ENTITIES = _word_set(
    """self cls this id ids key keys name names data dict json str int float bool list all one
    many value values result results args kwargs db session request response obj object objects
    entity entities record records row rows none true false main init new old default config
    settings options params query count total page limit offset filter filters type types
    error errors status path url payload body context ctx handler service repository repo model
    schema item items field fields attr attrs arg node nodes line lines text file files tmp
    str bytes"""
)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_TYPE_HEADER = re.compile(r"\b(?:class|struct|interface|trait|impl|enum|type)\s+([A-Za-z_]\w*)")
_FUNC_HEADER = re.compile(r"\b(?:def|function|fn|func)\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)")


def pluralize(word: str) -> str:
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def singularize(word: str) -> str:
    if word in _IRREGULAR_SINGULARS:
        return _IRREGULAR_SINGULARS[word]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "uses", "xes", "ches", "shes", "zzes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def split_identifier(name: str) -> list[str]:
    """The lower-case words of an identifier: getUserByID -> [get, user, by, id]."""
    return [word.lower() for word in _WORD.findall(name)]


@dataclass(frozen=True)
class Entity:
    """The thing a piece of CRUD code is about, as lower-case singular words: ("order", "item")."""

    words: tuple[str, ...]

    @property
    def name(self) -> str:
        return "_".join(self.words)

    def surface(self, plural: bool, style: str) -> str:
        """How the entity is written in one variant: (True, "pascal") -> "OrderItems"."""
        words = list(self.words)
        if plural:
            words[-1] = pluralize(words[-1])
        if style == "snake":
            return "_".join(words)
        if style == "kebab":
            return "-".join(words)
        if style == "upper":
            return "_".join(words).upper()
        if style == "pascal":
            return "".join(word.capitalize() for word in words)
        return words[0] + "".join(word.capitalize() for word in words[1:])  # camel


def _entity_words(words: list[str]) -> tuple[str, ...] | None:
    """The entity in the words of a name once its verb, role and qualifiers are gone."""
    while words and words[0] in _PREFIX_WORDS:
        words = words[1:]
    if words and words[0] in _VERBS:
        words = words[1:]
    for index, word in enumerate(words):
        if word in _CUT_WORDS:
            words = words[:index]
            break
    while words and (words[-1] in _ROLE_WORDS or words[-1] in ("id", "ids")):
        words = words[:-1]
    if not 1 <= len(words) <= 3 or any(word.isdigit() or len(word) < 2 for word in words):
        return None
    result = (*words[:-1], singularize(words[-1]))
    if all(word in _NOT_ENTITIES for word in result):
        return None
    return result


def find_entity(lines: Sequence[str]) -> Entity | None:
    """The entity the given lines are about, or None when they name none.

    Class names count most (`class OrderRepository`), then function names made of a CRUD verb
    and a noun (`def list_orders`), then `..._id` names. A tie goes to the later line.
    """
    scores: dict[tuple[str, ...], tuple[int, int]] = {}

    def vote(words: tuple[str, ...] | None, weight: int, position: int) -> None:
        if words:
            score, _ = scores.get(words, (0, 0))
            scores[words] = (score + weight, position)

    for position, line in enumerate(lines):
        for match in _TYPE_HEADER.finditer(line):
            vote(_entity_words(split_identifier(match.group(1))), 4, position)
        for match in _FUNC_HEADER.finditer(line):
            vote(_entity_words(split_identifier(match.group(1))), 3, position)
        for name in IDENTIFIER.findall(line):
            words = split_identifier(name)
            if len(words) >= 2 and words[0] in _VERBS:
                vote(_entity_words(words), 1, position)
            elif len(words) >= 2 and words[-1] in ("id", "ids"):
                vote(_entity_words(words[:-1]), 1, position)
    if not scores:
        return None
    best = max(scores.items(), key=lambda item: item[1])
    return Entity(best[0])


def starts_other_entity(line: str, entity: Entity) -> bool:
    """A class or function header for a different entity begins new code, not an instance."""
    for regex in (_TYPE_HEADER, _FUNC_HEADER):
        for match in regex.finditer(line):
            words = _entity_words(split_identifier(match.group(1)))
            if words and words != entity.words:
                return True
    return False


def _placeholder(plural: bool, style: str) -> str:
    return chr(_PLACEHOLDER_BASE + int(plural) * len(STYLES) + STYLES.index(style))


def _decode_placeholder(char: str) -> tuple[bool, str]:
    index = ord(char) - _PLACEHOLDER_BASE
    return index >= len(STYLES), STYLES[index % len(STYLES)]


def has_placeholder_chars(text: str) -> bool:
    """True for text that already holds the characters templates use (it cannot be abstracted)."""
    return _PLACEHOLDER_RE.search(text) is not None


class Abstractor:
    """Finds one entity's variants in text, at identifier-word boundaries."""

    def __init__(self, entity: Entity, language: str) -> None:
        self.entity = entity
        self.lower_style = code_rules(language).naming
        self.variants: dict[str, tuple[bool, frozenset[str]]] = {}
        for plural in (False, True):
            for style in STYLES:
                surface = entity.surface(plural, style)
                if surface in self.variants:
                    if self.variants[surface][0] == plural:
                        styles = self.variants[surface][1] | {style}
                        self.variants[surface] = (plural, styles)
                    continue  # a plural equal to its singular (data) reads as the singular
                self.variants[surface] = (plural, frozenset({style}))
        alternatives = []
        for surface in sorted(self.variants, key=len, reverse=True):
            # `user` must not match inside `username` or `superuser`; `User` may start a
            # camel-case word (getUser) but not continue an upper-case run (HTTPUser).
            left = r"(?<![A-Za-z0-9])" if surface[0].islower() else r"(?<![A-Z0-9])"
            right = r"(?![a-z0-9])" if surface[-1].islower() else r"(?![A-Z0-9])"
            alternatives.append(f"{left}{re.escape(surface)}{right}")
        self.regex = re.compile("|".join(alternatives))

    def _style(self, styles: frozenset[str], text: str, start: int, end: int) -> str:
        if len(styles) == 1:
            return next(iter(styles))
        after = text[end : end + 1]
        before = text[start - 1 : start] if start else ""
        if "camel" in styles and after.isupper():
            return "camel"  # userId
        if "kebab" in styles and ("-" in (before, after) or "/" in (before, after)):
            return "kebab"  # /users/ in a route
        return self.lower_style if self.lower_style in styles else "snake"

    def abstract(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            plural, styles = self.variants[match.group(0)]
            return _placeholder(plural, self._style(styles, text, match.start(), match.end()))

        return self.regex.sub(replace, text)

    def mentions(self, text: str) -> bool:
        return self.regex.search(text) is not None


@lru_cache(maxsize=512)
def abstractor_for(entity: Entity, language: str) -> Abstractor:
    """Built once per entity: mining meets the same few entities on every keystroke."""
    return Abstractor(entity, language)


def abstract(text: str, entity: Entity, language: str) -> str:
    """`text` with every variant of `entity` replaced by its placeholder."""
    return abstractor_for(entity, language).abstract(text)


def instantiate(template: str, entity: Entity) -> str:
    """A template with its placeholders written out for `entity`."""
    return _PLACEHOLDER_RE.sub(lambda m: entity.surface(*_decode_placeholder(m.group(0))), template)
