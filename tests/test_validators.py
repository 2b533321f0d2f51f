from __future__ import annotations

import pytest

from detector.validators import iban_valid, luhn_valid


@pytest.mark.parametrize(
    ("value", "ok"),
    [("4111 1111 1111 1111", True), ("4111-1111-1111-1111", True), ("4111 1111 1111 1112", False),
     ("4111", False), ("4111a1111b1111c1111", False), ("378282246310005", True)],
)  # fmt: skip
def test_luhn(value, ok):
    assert luhn_valid(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("DE89 3704 0044 0532 0130 00", True), ("GB82WEST12345698765432", True), ("GB82 WEST 1234 5698 7654 33", False),
     ("DE89", False), ("de89 3704 0044 0532 0130 00", False)],
)  # fmt: skip
def test_iban(value, ok):
    assert iban_valid(value) is ok
