"""PII training and dev data, one `SpanSource` per source of text, each with a train part and a dev part that are
split by *document or sub-corpus*, never by random sentence:

| source | text | train part | dev part |
|---|---|---|---|
| wikigold | Wikipedia articles, PERSON | first 75 % of the file (articles in order) | last 25 % |
| btc | tweets 2009-14, PERSON + @USERNAME | BTC sections a, b, e, f, g | section h |
| wnut17 | Reddit, YouTube, StackExchange, Twitter, PERSON | WNUT-17 train | WNUT-17 dev (other platforms) |
| business | project-written e-mails, tickets, notes, forms + Faker values | 80 % of the frames (by hash) | 20 % |
| synthetic | the chat/form/log template generator | train templates | held-out templates |
| pii_free | project tables, scores, code, prose; stdlib code; RECORD hashes | 75 % (hash), code, records | 25 % |

`labels` says what a source annotates: an entity score counts only those labels (a tweet's unannotated e-mail is not a
false positive); `pii_free` annotates everything (it has no PII), so any span there is a false positive.
"""

from __future__ import annotations

import hashlib
import json
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from probeguard.training.data import SpanExample
from probeguard.training.synth import DEFAULT_LOCALES, PII_LABELS, generate_examples
from probeguard.training.synth.context import SlotContext
from probeguard.training.synth.locales import get_faker
from probeguard.training.synth.render import Template, choose_style, render

DATA_DIR = Path(__file__).resolve().parent / "data"
STRUCTURED = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "SSN", "IP_ADDRESS", "DATE_OF_BIRTH", "PASSWORD")
# frame placeholder -> generator slot (training/synth/values.py, fillers.py)
_FRAME_SLOTS = {"first_name": "first", "last_name": "last", "url": "personal_url", "amount": "price",
                "date": "date_event"}  # fmt: skip


_NAMING_WORDS = ("copyright", "author", "written by", "contrib", "thanks to", "maintainer")


@dataclass(frozen=True)
class SpanSource:
    name: str
    kind: str  # encyclopedic | social | business | synthetic | pii_free
    labels: tuple[str, ...]  # labels this source annotates
    train: list[SpanExample]
    dev: list[SpanExample]


def _bucket(text: str) -> float:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF


def _read_real(path: Path) -> list[tuple[SpanExample, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            spans = tuple(sorted((s["label"], s["start"], s["end"]) for s in row["spans"]))
            rows.append((SpanExample(row["text"], spans, row.get("source", "")), row.get("source", "")))
    return rows


def _without_train_texts(source: SpanSource) -> SpanSource:
    """Drop dev texts that also occur in the train part (short lines such as '" ' recur across articles)."""
    seen = {e.text for e in source.train}
    return SpanSource(
        source.name, source.kind, source.labels, source.train, [e for e in source.dev if e.text not in seen]
    )


def real_sources(pii_real: Path) -> list[SpanSource]:
    wiki = [e for e, _ in _read_real(pii_real / "wikigold.jsonl")]
    cut = len(wiki) * 3 // 4
    btc = _read_real(pii_real / "btc_tweets.jsonl")
    wnut = _read_real(pii_real / "wnut17_train_dev.jsonl")
    return [_without_train_texts(s) for s in (
        SpanSource("wikigold", "encyclopedic", ("PERSON",), wiki[:cut], wiki[cut:]),
        SpanSource("btc", "social", ("PERSON", "USERNAME"), [e for e, s in btc if not s.endswith("h.conll")],
                   [e for e, s in btc if s.endswith("h.conll")]),
        SpanSource("wnut17", "social", ("PERSON",), [e for e, s in wnut if "/train/" in s],
                   [e for e, s in wnut if "/dev/" in s]),
    )]  # fmt: skip


def _frame_template(index: int, text: str, kind: str) -> Template:
    for old, new in _FRAME_SLOTS.items():
        text = text.replace("{" + old + "}", "{" + new + "}")
    return Template(f"frame{index}", text, "negative" if kind.startswith("neg_") else "pii", "en", kind == "chat")


def fill_frames(templates: list[Template], n: int, seed: int) -> list[SpanExample]:
    """`n` texts from the frames, each with values from a random locale (names from many cultures)."""
    rng = random.Random(f"frames/{seed}")
    locales = [*DEFAULT_LOCALES, "ja_JP"]
    out = []
    for _ in range(n):
        template, locale = rng.choice(templates), rng.choice(locales)
        example_seed = rng.getrandbits(64)
        faker = get_faker(locale)
        faker.seed_instance(example_seed)
        ctx = SlotContext(faker=faker, rng=random.Random(example_seed), locale=locale, lang="en")
        text, spans = render(template, ctx, choose_style(template, ctx.rng))
        out.append(SpanExample(text, tuple((s.label, s.start, s.end) for s in spans), template.template_id))
    return out


def business_source(n_train: int, n_dev: int, seed: int) -> SpanSource:
    rows = [json.loads(x) for x in (DATA_DIR / "pii" / "frames.jsonl").read_text(encoding="utf-8").splitlines() if x]
    templates = [_frame_template(i, r["text"], r["kind"]) for i, r in enumerate(rows) if "{{" not in r["text"]]
    train = [t for t in templates if _bucket(t.text) >= 0.2]
    dev = [t for t in templates if _bucket(t.text) < 0.2]
    return SpanSource("business", "business", PII_LABELS, fill_frames(train, n_train, seed),
                      fill_frames(dev, n_dev, seed + 1))  # fmt: skip


def synthetic_source(n_train: int, n_dev: int, seed: int) -> SpanSource:
    def spans(examples):
        return [SpanExample(e.text, tuple((s.label, s.start, s.end) for s in e.spans), e.template_id) for e in examples]

    return SpanSource("synthetic", "synthetic", PII_LABELS,
                      spans(generate_examples(n_train, seed=seed, template_split="train")),
                      spans(generate_examples(n_dev, seed=seed + 2, template_split="heldout")))  # fmt: skip


def stdlib_code_chunks(n: int, seed: int, chars: int = 600) -> list[str]:
    """Chunks of the Python standard library's own source: code, comments, docstrings. Lines naming authors,
    copyrights or e-mail addresses are left out, so the chunks hold no personal data."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.stat().st_size > 2000)
    rng = random.Random(f"stdlib/{seed}")
    out = []
    for path in rng.sample(files, min(len(files), n)):
        lines = [x for x in path.read_text(encoding="utf-8", errors="replace").splitlines()
                 if "@" not in x and not any(w in x.lower() for w in _NAMING_WORDS)]  # fmt: skip
        text = "\n".join(lines)
        if len(text) > chars:
            at = rng.randrange(0, len(text) - chars)
            out.append(text[at : at + chars].strip())
    return [t for t in out if t]


def package_record_chunks(n: int, seed: int, chars: int = 400) -> list[str]:
    """Chunks of installed packages' RECORD files (`path,sha256=<digest>,size` lines): real text full of hashes and
    random-looking strings that are not secrets. Nothing personal: file paths, digests and sizes only."""
    if n <= 0:
        return []
    root = Path(sysconfig.get_paths()["purelib"])
    files = sorted(root.glob("*.dist-info/RECORD"))
    rng = random.Random(f"records/{seed}")
    texts = {}  # lines with a digest only (the hashless __pycache__ lines depend on what this machine compiled)
    for path in files:
        lines = [x for x in path.read_text(encoding="utf-8", errors="replace").splitlines() if ",sha256=" in x]
        texts[path] = "\n".join(lines)
    files = [p for p in files if texts[p]]
    out: list[str] = []
    for _ in range(n if files else 0):
        text = texts[rng.choice(files)]
        at = rng.randrange(0, max(len(text) - chars, 1))
        start = text.find("\n", at) + 1 if at else 0  # whole lines
        end = text.rfind("\n", start, start + chars)
        chunk = text[start : end if end > start else start + chars].strip()
        if chunk and chunk not in out:
            out.append(chunk)
    return out


def pii_free_source(n_code: int, seed: int, n_records: int = 0) -> SpanSource:
    rows = [json.loads(x) for x in (DATA_DIR / "pii" / "negatives.jsonl").read_text(encoding="utf-8").splitlines()
            if x]  # fmt: skip
    texts = [r["text"] for r in rows if r.get("kind") != "prose_public"]
    train = [SpanExample(t, (), "pii_free") for t in texts if _bucket(t) >= 0.25]
    train += [SpanExample(t, (), "stdlib") for t in stdlib_code_chunks(n_code, seed)]
    train += [SpanExample(t, (), "records") for t in package_record_chunks(n_records, seed)]
    dev = [SpanExample(t, (), "pii_free") for t in texts if _bucket(t) < 0.25]
    return SpanSource("pii_free", "pii_free", PII_LABELS, train, dev)


def subsample(examples: list[SpanExample], n: int, seed: int) -> list[SpanExample]:
    return examples if len(examples) <= n else random.Random(seed).sample(examples, n)
