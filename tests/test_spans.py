"""Table-driven span decoding: offsets, merging, fragments, snapping, unicode, emoji, CJK."""

from __future__ import annotations

import re

import numpy as np
import pytest

from probeguard.detector.spans import Span, decode_spans, snap

LABELS = ("PERSON", "EMAIL", "PHONE", "SSN", "ADDRESS", "CREDIT_CARD", "IBAN", "URL", "USERNAME")
THRESHOLDS = np.full(len(LABELS), 0.5, dtype=np.float32)


def _tokens(text: str) -> list[tuple[int, int]]:
    """Gemma-like pieces: a leading space belongs to the next word; words split into <=4-char chunks."""
    out = []
    for m in re.finditer(r"\s*\S+", text):
        s, e = m.start(), m.end()
        while s < e:
            out.append((s, min(s + 4, e)))
            s = min(s + 4, e)
    return out


def _decode(text: str, marks: dict[str, str]) -> list[tuple[str, str]]:
    """marks: substring -> label; tokens overlapping the substring get p=0.9 for that label."""
    offsets = np.array(_tokens(text), dtype=np.int64)
    probs = np.full((len(offsets), len(LABELS)), 0.05, dtype=np.float32)
    for sub, label in marks.items():
        label, _, p = label.partition("@")
        a = text.index(sub)
        b = a + len(sub)
        for i, (s, e) in enumerate(offsets):
            if s < b and e > a and text[s:e].strip():
                probs[i, LABELS.index(label)] = float(p or 0.9)
    spans = decode_spans(text, offsets, probs, LABELS, THRESHOLDS)
    return [(s.label, text[s.start : s.end]) for s in spans]


CASES = [
    ("no pii", "hello there, how are you?", {}, []),
    ("one name", "My name is Anna Schmidt.", {"Anna Schmidt": "PERSON"}, [("PERSON", "Anna Schmidt")]),
    ("email keeps dots, drops final period", "Write to anna.schmidt@example.org.",
     {"anna.schmidt@example.org": "EMAIL"}, [("EMAIL", "anna.schmidt@example.org")]),
    ("two entities split by label", "Anna Schmidt 555-0199", {"Anna Schmidt": "PERSON", "555-0199": "PHONE"},
     [("PERSON", "Anna Schmidt"), ("PHONE", "555-0199")]),
    ("fragment inside a word takes the run's label", "SSN 123-45-6789 ok",
     {"123-45-678": "SSN", "9": "PHONE@0.6"}, [("SSN", "123-45-6789")]),
    ("partial word snaps to whole word", "Contact Maximilianus now", {"Maxi": "PERSON"},
     [("PERSON", "Maximilianus")]),
    ("wrapping punctuation trimmed", "(Anna) and <anna@x.io>", {"Anna": "PERSON", "anna@x.io": "EMAIL"},
     [("PERSON", "Anna"), ("EMAIL", "anna@x.io")]),
    ("non-latin name", "Hi, I'm Krisztián Szöllösy!", {"Krisztián Szöllösy": "PERSON"},
     [("PERSON", "Krisztián Szöllösy")]),
    ("emoji next to entity", "😀 Anna 😀", {"Anna": "PERSON"}, [("PERSON", "Anna")]),
    ("below threshold ignored", "Anna Schmidt", {"Anna Schmidt": "PERSON@0.4"}, []),
    ("multi-line address stays one span", "Anna\nBaker Street 5\nLondon NW1",
     {"Anna": "PERSON", "Baker Street 5": "ADDRESS", "London NW1": "ADDRESS"},
     [("PERSON", "Anna"), ("ADDRESS", "Baker Street 5\nLondon NW1")]),
    ("other labels do not continue across lines", "Anna\nSchmidt", {"Anna": "PERSON", "Schmidt": "PERSON@0.8"},
     [("PERSON", "Anna"), ("PERSON", "Schmidt")]),
    ("weak neighbour joins by hysteresis", "mail bmeza@hotmail.com now",
     {"bmeza@hotmail": "EMAIL", ".com": "EMAIL@0.3"}, [("EMAIL", "bmeza@hotmail.com")]),
    ("too weak neighbour is still snapped into the e-mail", "mail bmeza@hotmail.com now",
     {"bmeza@hotmail": "EMAIL"}, [("EMAIL", "bmeza@hotmail.com")]),
    ("short same-label gap is bridged", "IBAN GB82 WEST 1234 5698 7654 32 thanks",
     {"GB82 WEST 1234": "IBAN", "5698 7654 32": "IBAN"}, [("IBAN", "GB82 WEST 1234 5698 7654 32")]),
    ("brackets that belong to the value stay", "call (0540) 482719 or visit Gavardo (BS).",
     {"(0540) 482719": "PHONE", "Gavardo (BS)": "ADDRESS"}, [("PHONE", "(0540) 482719"), ("ADDRESS", "Gavardo (BS)")]),
    ("url keeps its path", "see https://github.com/anna_s, thanks", {"https://github.com/anna": "URL"},
     [("URL", "https://github.com/anna_s")]),
    ("a list of names is one entity per name", "met Pat Metheny, Jeff Beck and Chick Corea",
     {"Pat Metheny, Jeff Beck": "PERSON", "Chick Corea": "PERSON"},
     [("PERSON", "Pat Metheny"), ("PERSON", "Jeff Beck"), ("PERSON", "Chick Corea")]),
    ("pre-tokenised list", "Thom Bresh ( Merle Travis 's son )", {"Thom Bresh ( Merle Travis": "PERSON"},
     [("PERSON", "Thom Bresh"), ("PERSON", "Merle Travis")]),
    ("a nickname in quotes stays inside the name", 'has been Harold "Junior" Theriault since',
     {'Harold "Junior" Theriault': "PERSON"}, [("PERSON", 'Harold "Junior" Theriault')]),
    ("an address keeps its commas", "ship to 5 Baker Street, London, NW1 6XE today",
     {"5 Baker Street, London, NW1 6XE": "ADDRESS"}, [("ADDRESS", "5 Baker Street, London, NW1 6XE")]),
    ("handles are one entity each", "cc @anna_s @ben thanks", {"@anna_s @ben": "USERNAME"},
     [("USERNAME", "@anna_s"), ("USERNAME", "@ben")]),
    ("e-mails in a list are one entity each", "to a@x.io, b@y.io", {"a@x.io, b@y.io": "EMAIL"},
     [("EMAIL", "a@x.io"), ("EMAIL", "b@y.io")]),
    ("a name written as a handle is a user name", "RT @justinbieber : thanks", {"justinbieber": "PERSON"},
     [("USERNAME", "@justinbieber")]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "marks", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decode_spans(name, text, marks, expected):
    assert _decode(text, marks) == expected


def test_cjk_is_not_extended_to_the_whole_sentence():
    text = "私の名前は田中太郎です"
    a = text.index("田中太郎")
    offsets = np.array([(i, i + 1) for i in range(len(text))], dtype=np.int64)
    probs = np.full((len(text), len(LABELS)), 0.05, dtype=np.float32)
    probs[a : a + 4, 0] = 0.9
    spans = decode_spans(text, offsets, probs, LABELS, THRESHOLDS)
    assert spans == [Span("PERSON", a, a + 4, pytest.approx(0.9))]


def _digit_tokens(text: str) -> np.ndarray:
    """Gemma-like: every digit and every space is its own token."""
    return np.array([(i, i + 1) for i in range(len(text))], dtype=np.int64)


def test_numbers_split_into_digit_tokens_are_one_entity():
    text = "call +33 3 10 52 36 74 now"
    offsets = _digit_tokens(text)
    probs = np.full((len(text), len(LABELS)), 0.05, dtype=np.float32)
    a, b = text.index("+"), text.index("74")
    probs[a:b, LABELS.index("PHONE")] = 0.9
    probs[b : b + 2, LABELS.index("SSN")] = 0.7  # the last group typed differently
    spans = decode_spans(text, offsets, probs, LABELS, THRESHOLDS)
    assert [(s.label, text[s.start : s.end]) for s in spans] == [("PHONE", "+33 3 10 52 36 74")]


@pytest.mark.parametrize(
    ("text", "marked", "label", "expected"),
    [
        ("card 4111 1111 1111 1111 exp 12/26", "4111 1111 1111", "CREDIT_CARD", "4111 1111 1111 1111"),
        ("card 4111-1111-1111-1111.", "1111-1111-1111", "CREDIT_CARD", "4111-1111-1111-1111"),
        ("IBAN: DE89 3704 0044 0532 0130 00 Thanks", "DE89 3704 0044 0532", "IBAN", "DE89 3704 0044 0532 0130 00"),
        ("card 1111 2222 3333 4445 exp", "1111 2222", "CREDIT_CARD", None),  # never valid: not emitted
    ],
)
def test_structured_numbers_complete_to_a_valid_checksum(text, marked, label, expected):
    offsets = _digit_tokens(text)
    probs = np.full((len(text), len(LABELS)), 0.05, dtype=np.float32)
    a = text.index(marked)
    probs[a : a + len(marked), LABELS.index(label)] = 0.9
    spans = decode_spans(text, offsets, probs, LABELS, THRESHOLDS)
    assert [(s.label, text[s.start : s.end]) for s in spans] == ([(label, expected)] if expected else [])


@pytest.mark.parametrize(
    ("text", "marks", "expected"),
    [
        # the probe calls a league table an IBAN and a ski time an URL: the validators refuse both
        ("Standings: Arsenal 6 33 27 42 Chelsea", {"6 33 27 42": "IBAN"}, []),
        ("Slalom: 1. Kostelic 1:49.84", {"1:49.84": "URL"}, []),
        ("it was . said Anna", {".": "PERSON"}, []),  # no letter or digit, any label
        # a Luhn-valid card in a payment message: found from its pattern at a probe score below the threshold
        (
            "My card is 4111 1111 1111 1111.",
            {"4111 1111 1111 1111": "CREDIT_CARD@0.2"},
            [("CREDIT_CARD", "4111 1111 1111 1111")],
        ),
        # ... but not when the probe sees no card at all (a test fixture, an order number)
        ("My card is 4111 1111 1111 1111.", {}, []),
        # a validated candidate replaces a same-label probe span that missed its end
        ("mail me: anna@example.org!", {"anna@exa": "EMAIL"}, [("EMAIL", "anna@example.org")]),
    ],
)
def test_structured_labels_are_validated(text, marks, expected):
    assert _decode(text, marks) == expected


def test_score_is_max_of_the_label_over_the_run():
    text = "Anna Schmidt"
    offsets = np.array([(0, 4), (4, 12)], dtype=np.int64)
    probs = np.zeros((2, len(LABELS)), dtype=np.float32)
    probs[:, 0] = [0.7, 0.95]
    (span,) = decode_spans(text, offsets, probs, LABELS, THRESHOLDS)
    assert span.score == pytest.approx(0.95)


def test_per_label_thresholds():
    text = "Anna Elm St"
    offsets = np.array([(0, 4), (4, 11)], dtype=np.int64)
    probs = np.zeros((2, len(LABELS)), dtype=np.float32)
    probs[0, 0] = probs[1, 4] = 0.6
    thresholds = THRESHOLDS.copy()
    thresholds[0] = 0.7
    assert [s.label for s in decode_spans(text, offsets, probs, LABELS, thresholds)] == ["ADDRESS"]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape mismatch"):
        decode_spans("ab", np.zeros((2, 2), dtype=np.int64), np.zeros((2, 3)), LABELS, THRESHOLDS)


@pytest.mark.parametrize(
    ("text", "start", "end", "label", "expected"),
    [
        ("  Anna  ", 0, 8, "", "Anna"),
        ("Anna.", 0, 5, "", "Anna"),
        ("xAnnay", 1, 3, "", "xAnnay"),
        ("   ", 0, 3, "", ""),
        ("1. Franz Heinzer", 1, 16, "PERSON", "Franz Heinzer"),
        ("is .hunter2!", 3, 12, "PASSWORD", ".hunter2!"),
    ],
)
def test_snap(text, start, end, label, expected):
    s, e = snap(text, start, end, label)
    assert text[s:e] == expected
