"""What a request's URL and form may hold as numbers: catalog ids and whole numbers.

``str.isdigit`` is true of "²" and other digits ``int`` refuses, and an id past 64 bits reaches
the database as an overflow; both would be a 500 where the answer is 404 or a refusal.
"""

from __future__ import annotations

import re

from starlette.convertors import Convertor, register_url_convertor

MAX_DIGITS = 18  # below 2**63 on every backend
_WHOLE = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")


def whole_number(text: str) -> int | None:
    """``text`` as a whole number when it is 1 to 18 ASCII digits, else None."""
    return int(text) if _WHOLE.fullmatch(text) else None


class CatalogId(Convertor[int]):
    """A path segment naming a row by id (``{image_id:id}``): 1 to 18 ASCII digits, so a longer
    guessed id matches no route and is 404."""

    regex = rf"[0-9]{{1,{MAX_DIGITS}}}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("id", CatalogId())
