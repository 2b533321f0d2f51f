"""National identifiers (the SSN label): a value is accepted when one country's rules accept it.

`python-stdnum` carries the checksums for the US SSN, German tax id, French NIR, Spanish DNI/NIE, Italian codice
fiscale, Dutch BSN, British NHS number, Indian Aadhaar/PAN and Japanese My Number. It has no British National Insurance
number and no German health/pension insurance numbers; those three follow their published format rules here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.exceptions import ValidationError
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar, pan
from stdnum.it import codicefiscale
from stdnum.jp import in_ as my_number
from stdnum.nl import bsn
from stdnum.us import ssn

# HMRC: first letter never D F I Q U V, second never D F I O Q U V; these prefixes are never issued.
_NINO = re.compile(r"(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]")
_KVNR = re.compile(r"[A-Z]\d{9}")  # Krankenversichertennummer: letter, 8 digits, check digit
_RVNR = re.compile(r"\d{2}(\d{2})(\d{2})\d{2}[A-Z]\d{3}")  # area, birth day/month/year, initial, serial, check


def _stdnum(module: object) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            return bool(module.is_valid(value))  # type: ignore[attr-defined]
        except ValidationError:
            return False

    return check


def nino_valid(value: str) -> bool:
    return bool(_NINO.fullmatch(value.replace(" ", "").upper()))


def kvnr_valid(value: str) -> bool:
    """Letter as 01..26, then weights 1,2,1,2… over the first 10 digits, cross sums, mod 10 = the check digit."""
    compact = value.replace(" ", "").upper()
    if not _KVNR.fullmatch(compact):
        return False
    digits = f"{ord(compact[0]) - 64:02d}" + compact[1:9]
    total = sum(sum(divmod(int(d) * (1 + i % 2), 10)) for i, d in enumerate(digits))
    return total % 10 == int(compact[9])


def rvnr_valid(value: str) -> bool:
    """Format and a real day/month of birth (no public checksum library covers the check digit)."""
    m = _RVNR.fullmatch(value.replace(" ", "").upper())
    return bool(m) and 1 <= int(m.group(1)) <= 31 and 1 <= int(m.group(2)) <= 12


def aadhaar_valid(value: str) -> bool:
    compact = value.replace(" ", "").replace("-", "")
    return len(compact) == 12 and _stdnum(aadhaar)(compact)


NATIONAL_ID_CHECKS: dict[str, Callable[[str], bool]] = {
    "US SSN": _stdnum(ssn),
    "GB NINO": nino_valid,
    "GB NHS": _stdnum(nhs),
    "DE IdNr": _stdnum(idnr),
    "DE KVNR": kvnr_valid,
    "DE RVNR": rvnr_valid,
    "FR NIR": _stdnum(nir),
    "ES DNI": _stdnum(dni),
    "ES NIE": _stdnum(nie),
    "IT codice fiscale": _stdnum(codicefiscale),
    "NL BSN": _stdnum(bsn),
    "IN Aadhaar": aadhaar_valid,
    "IN PAN": _stdnum(pan),
    "JP My Number": _stdnum(my_number),
}


def national_id_kind(value: str) -> str | None:
    """The first scheme that accepts `value`, or None. Only digits, letters, spaces and dashes may appear."""
    if not value or not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z -]*", value) or not any(c.isdigit() for c in value):
        return None
    return next((kind for kind, check in NATIONAL_ID_CHECKS.items() if check(value)), None)


def national_id_valid(value: str) -> bool:
    return national_id_kind(value) is not None


__all__ = ["NATIONAL_ID_CHECKS", "national_id_kind", "national_id_valid"]
