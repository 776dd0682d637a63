"""A wrapper that keeps tokens and keys out of logs, reprs and tracebacks."""

from __future__ import annotations


class Secret:
    """A secret string; only ``reveal()`` gives the value back."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the secret masked."""
        if not self._value:
            return text
        return text.replace(self._value, "***")

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
