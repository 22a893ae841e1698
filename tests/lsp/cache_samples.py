"""A small CRUD project: two repositories of one shape, the second one being written."""

MODELS = """from dataclasses import dataclass


@dataclass
class User:
    id: int
    name: str


@dataclass
class Order:
    id: int
    total: float
"""
USERS = """from models import User


class UserRepository:
    def __init__(self, db):
        self.db = db

    def get_user(self, user_id):
        return self.db.get(User, user_id)

    def list_users(self):
        return self.db.all(User)
"""
ORDERS = """from models import Order


class OrderRepository:
    def __init__(self, db):
        self.db = db

    def get_order(self, order_id):
        """
