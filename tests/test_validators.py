"""Validators of structured PII: table-driven accept/reject cases, candidates, completion, the registry."""

from __future__ import annotations

import re

import pytest

from probeguard.detector.validators import (
    DEFAULT_VALIDATORS,
    Validator,
    ValidatorRegistry,
    address_valid,
    card_valid,
    complete_structured,
    date_valid,
    email_valid,
    iban_valid,
    ip_valid,
    name_valid,
    national_id_valid,
    phone_valid,
    secret_valid,
    url_valid,
)
from probeguard.detector.validators.national_ids import national_id_kind

CASES = [
    (card_valid, "4111 1111 1111 1111", True), (card_valid, "4111-1111-1111-1111", True),
    (card_valid, "378282246310005", True), (card_valid, "5555 5555 5555 4444", True),
    (card_valid, "4111 1111 1111 1112", False), (card_valid, "4111", False),
    (card_valid, "4111a1111b1111c1111", False), (card_valid, "1234567812345670", False),  # Luhn ok, no issuer
    (iban_valid, "DE89 3704 0044 0532 0130 00", True), (iban_valid, "GB82WEST12345698765432", True),
    (iban_valid, "GB82 WEST 1234 5698 7654 33", False), (iban_valid, "DE89", False), (iban_valid, "27", False),
    (iban_valid, "de89 3704 0044 0532 0130 00", False), (iban_valid, "6 33 27 42", False),
    (iban_valid, "DE89 3704 0044 0532 0130", False),  # too short for a German IBAN
    (phone_valid, "+49 30 1234567", True), (phone_valid, "(555) 123-4567", True), (phone_valid, "020 7946 0958", True),
    (phone_valid, "+1-675-691-5470x15572", True), (phone_valid, "12345", False), (phone_valid, "1:49.84", False),
    (phone_valid, "call me", False),
    (email_valid, "anna.schmidt@example-mail.de", True), (email_valid, "x..y@a.com", False),
    (email_valid, "said", False), (email_valid, "a@b", False),
    (ip_valid, "192.168.0.1", True), (ip_valid, "2001:db8::1", True), (ip_valid, "10.0.0.0/8", True),
    (ip_valid, "1:49.84", False), (ip_valid, "1.2.3", False), (ip_valid, "12:30:45", False),
    (ip_valid, "999.1.1.1", False),
    (url_valid, "https://example.com/a?b=1", True), (url_valid, "www.foo.org", True),
    (url_valid, "anna-k.dev/blog", True),
    (url_valid, "https://mastodon.social/@anna", True), (url_valid, "http://x", False), (url_valid, "2.14.1", False),
    (url_valid, "anna@example.org", False), (url_valid, "e.g", False),
    (national_id_valid, "123-45-6789", True), (national_id_valid, "078-05-1120", False),  # the famous wallet SSN
    (national_id_valid, "AB123456C", True), (national_id_valid, "ZZ123456C", False),
    (national_id_valid, "12345678Z", True), (national_id_valid, "12345678A", False),
    (national_id_valid, "a a a", False), (national_id_valid, ".", False), (national_id_valid, "1996-12-06", False),
    (date_valid, "1985-03-14", True), (date_valid, "03/14/1985", True), (date_valid, "14.03.1985", True),
    (date_valid, "March 14, 1985", True), (date_valid, "14 de marzo de 1985", True), (date_valid, "4. Mai 1990", True),
    (date_valid, "1985年3月4日", True), (date_valid, "Tuesday, 3rd June 1975", True),
    (date_valid, "27", False), (date_valid, "2999-01-01", False), (date_valid, "13/13/1990", False),
    (date_valid, "1:49.84", False), (date_valid, "said", False),
    (name_valid, "Anna", True), (name_valid, "翼", True), (name_valid, "2018", False), (name_valid, "F", False),
    (secret_valid, "hunter2", True), (secret_valid, "1)", False), (secret_valid, "two words", False),
    (secret_valid, "2291686506322067", False), (secret_valid, "http://t.co/nbuRaLFEM3", False),
    (secret_valid, "Tr0ub4dor&3", True),
    (address_valid, "F", False), (address_valid, "12 Elm St", True),
]  # fmt: skip


@pytest.mark.parametrize(("check", "value", "ok"), CASES, ids=[f"{c.__name__}:{v}" for c, v, _ in CASES])
def test_check(check, value, ok):
    assert check(value) is ok


@pytest.mark.parametrize(
    ("value", "kind"),
    [("123-45-6789", "US SSN"), ("AB 12 34 56 C", "GB NINO"), ("12345678Z", "ES DNI"), ("X1234567L", "ES NIE"),
     ("RSSMRA85T10A562S", "IT codice fiscale"), ("A123456780", "DE KVNR"), ("2345 6789 0124", "IN Aadhaar")],
)  # fmt: skip
def test_national_id_kinds(value, kind):
    assert national_id_kind(value) == kind


def test_every_label_with_a_validator_refuses_punctuation_only():
    for label in DEFAULT_VALIDATORS.labels:
        assert not DEFAULT_VALIDATORS.accepts(label, ". - ")
    assert not DEFAULT_VALIDATORS.accepts("PASSWORD", ".")  # labels without a validator too
    assert DEFAULT_VALIDATORS.accepts("PASSWORD", "hunter2")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("My card is 4111 1111 1111 1111.", [("CREDIT_CARD", "4111 1111 1111 1111")]),
     ("IBAN DE89 3704 0044 0532 0130 00 IS mine", [("IBAN", "DE89 3704 0044 0532 0130 00")]),
     ("mail anna@example.org, or www.anna.dev.", [("EMAIL", "anna@example.org"), ("URL", "www.anna.dev")]),
     ("server 10.0.0.1 answered", [("IP_ADDRESS", "10.0.0.1")]),
     ("SSN 123-45-6789.", [("SSN", "123-45-6789")]),
     ("Slalom: 1. Kostelic 1:49.84 2. Maier 1:50.02", []),
     ("Version 2.14.1 ships on 2026-11-23 at 12:30:45.", []),
     ("my password is hunter2", [("PASSWORD", "hunter2")]),
     ("the wifi password is now s3cret!", [("PASSWORD", "s3cret")]),
     ('DB_PASSWORD="Tr0ub4dor&3"', [("PASSWORD", "Tr0ub4dor&3")]),
     ("SMTP_PASSWORD=<your-password> and passwords are hard; the PIN is 4821", [])],
)  # fmt: skip
def test_candidates(text, expected):
    found = [(label, text[s:e]) for label, s, e in DEFAULT_VALIDATORS.candidates(text)]
    for item in expected:
        assert item in found
    assert {label for label, _ in found} <= {label for label, _ in expected} | {"PHONE"}


def test_candidates_never_fail_their_check():
    text = "4111 1111 1111 1111 DE89 3704 0044 0532 0130 00 6 33 27 42 +49 30 1234567 10.0.0.1 999.1.1.1 AB123456C"
    for label, s, e in DEFAULT_VALIDATORS.candidates(text):
        assert DEFAULT_VALIDATORS.accepts(label, text[s:e])


@pytest.mark.parametrize(
    ("text", "start", "end", "label", "expected"),
    [("card 4111 1111 1111 1111 ok", 5, 19, "CREDIT_CARD", "4111 1111 1111 1111"),
     ("IBAN DE89 3704 0044 0532 0130 00.", 5, 24, "IBAN", "DE89 3704 0044 0532 0130 00"),
     ("card 4111 1111 1111 1112 ok", 5, 19, "CREDIT_CARD", "4111 1111 1111"),  # never valid: left as detected
     ("name Anna", 5, 9, "PERSON", "Anna")],
)  # fmt: skip
def test_complete_structured(text, start, end, label, expected):
    s, e = complete_structured(text, start, end, label)
    assert text[s:e] == expected


def test_registry_refuses_duplicates_and_is_extensible():
    registry = ValidatorRegistry()
    registry.register(Validator("ORDER_ID", lambda v: v.startswith("ORD-"), re.compile(r"ORD-\d+")))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Validator("ORDER_ID", bool))
    assert list(registry.candidates("see ORD-42 and ORD-7")) == [("ORDER_ID", 4, 10), ("ORDER_ID", 15, 20)]
