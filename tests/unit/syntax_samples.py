"""A Python module to ask syntax questions of, shared by the prompts syntax tests."""

INVENTORY = '''\
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Item:
    name: str
    quantity: int = 0


class Inventory(Base, metaclass=Registry):
    """Items in stock, by name."""

    def __init__(self, owner: str, *, limit: int = 100) -> None:
        self.owner = owner
        self.items: dict[str, Item] = {}

    def add(self, item: Item) -> None:
        if item.quantity < 0 or not item.name:
            raise ValueError(f"bad item {item.name}")
        elif item.name in self.items:
            self.items[item.name].quantity += item.quantity
        else:
            self.items[item.name] = item

    @staticmethod
    def parse(line: str, /, sep: str = ",", *fields: str, strict=False, **extra) -> Item:
        """Read an item from one CSV line."""
        name, quantity = line.split(sep)
        try:
            return Item(name, int(quantity))
        except ValueError as error:
            raise errors.ParseError(line) from error

    def total(self):


def summarize(inventory):
    return sum(item.quantity for item in inventory.items.values() if item.quantity)
'''.replace("def total(self):\n", "def total(self):\n        \n")  # the cursor's blank line


def at(text: str, marker: str, delta: int = 0) -> int:
    return text.index(marker) + delta
