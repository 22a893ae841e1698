"""Measurements run by `flashcode bench NAME`; each module exposes `main(argv) -> int`."""
