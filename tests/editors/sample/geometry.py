import math


def area(radius: float) -> float:
    """Area of a circle.

    >>> round(area(1.0), 2)
    3.14
    """
    if radius < 0:
        raise ValueError("radius must not be negative")
    return math.pi * radius * radius


def scale(values: list[float], factor: float) -> list[float]:
    return [v * factor for v in values]


def mean(values: list[float]) -> float:
    total = 0.0
    for v in values:
        total += v
    return total / len(values)
