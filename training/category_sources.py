"""Category data (unsafe, prompt_injection) as named sources, for leave-one-source-out selection and a dev suite.

Each `CategorySource` has a role: `positive` (what the head must flag), `lookalike` (benign text written with the
vocabulary of the positives: the threshold must not flag it) or `negative` (ordinary traffic of one kind: the
threshold is set on these, pooled). Train and dev parts are split by a hash of the text (for injections: of the
carrier document), so no dev text or dev document is ever trained on.

unsafe
: positives: `advbench` (AdvBench/MaliciousInstruct/TDC imperatives), `harmbench_val`, `hh_unsafe` (hh-rlhf red-team
  first turns the project labelled unsafe, rules in training/data/unsafe/LABELLING.md), and the project-written
  `pw_harm_questions`, `pw_harm_wrapped`, `pw_harm_chat`, `pw_harm_multilingual`, `pw_pairs_harm`, `pw_pairs_b_harm`,
  `pw_pairs_c_harm`, `pw_pairs_d_harm`.
  Look-alikes:
  `pw_benign_tech`, `pw_benign_safety`, `pw_benign_fiction_history`, `pw_benign_multilingual`, `hh_safe`,
  `pw_pairs_benign` (the benign twins of `pw_pairs_harm`, one family: held out together), `pw_pairs_b_benign`,
  `pw_pairs_c_benign` and `pw_pairs_d_benign` (the same for the second to fourth pair sets, each its own family).
  Negatives: `alpaca`, `documents` (e-mails, tables, code, web pages, notes), `pii_messages` (business and template
  texts full of PII).
  Borderline hh-rlhf turns are used nowhere.

prompt_injection (text that tries to override the instructions of the AI system reading it)
: positives: documents of every kind with an attack instruction inserted at the start, middle or end, one source per
  attack category (`inj:<category>`: 15 BIPIA text-attack categories, 10 BIPIA code-attack categories, 18 project
  categories), and `pw_direct` (direct overrides and jailbreak wrappers). Look-alikes: `pw_benign_meta` (questions
  about prompts, "ignore my last message"), `pw_doc_requests` (clean documents with requests to their human reader),
  `pw_reader_lines` (clean documents with one inserted line to their human reader that uses injection words: "please
  ignore my earlier e-mail", "forward this to the team"), `hh_safe`. Negatives: the clean carrier documents
  (`documents`), `alpaca`, `pii_messages`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from probeguard.training.contrastive import bastion_rows, synthetic_injections
from probeguard.training.data import LabelledText
from probeguard.training.pii_sources import business_source, synthetic_source

DATA_DIR = Path(__file__).resolve().parent / "data"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEV_SHARE = 0.25
MAX_DOC_CHARS = 1500  # carrier documents are cut here: a 1,500-character e-mail already spans ~350 tokens


@dataclass(frozen=True)
class CategorySource:
    name: str
    category: str
    role: str  # positive | lookalike | negative
    train: list[LabelledText]
    dev: list[LabelledText]
    # Sources of one family share a style (the same labeller, language mix or template): leave-one-out holds out the
    # whole family, or a benign sibling would teach "this style is benign" and hide how an unseen style fares.
    family: str = ""

    @property
    def group(self) -> str:
        return self.family or self.name


FAMILIES = {
    "pw_harm_multilingual": "multilingual", "pw_benign_multilingual": "multilingual", "hh_unsafe": "hh",
    "hh_safe": "hh", "pw_direct": "direct", "pw_benign_meta": "direct", "bastion": "bastion",
    "bastion_traps": "bastion", "pw_template_injections": "templates", "pw_template_lookalikes": "templates",
    "pw_pairs_harm": "pairs", "pw_pairs_benign": "pairs", "pw_pairs_b_harm": "pairs_b", "pw_pairs_b_benign": "pairs_b",
    "pw_pairs_c_harm": "pairs_c", "pw_pairs_c_benign": "pairs_c", "pw_pairs_d_harm": "pairs_d",
    "pw_pairs_d_benign": "pairs_d",
    # attacks_c.jsonl: four kinds of explicit override, held out together so no sibling hides how a new override fares
    **{f"inj:pw:override_{k}": "overrides" for k in ("exfiltration", "fake_authority", "reset", "action")},
}  # fmt: skip


def _bucket(key: str) -> float:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF


def _split(
    name: str, category: str, role: str, texts: list[str], keys: list[str] | None = None, twins: bool = False
) -> CategorySource:
    """`keys`: what the train/dev split hashes (default: the text); `twins`: the keys are minimal-pair keys, kept on
    the rows (`LabelledText.pair`) so a fit can pair a harmful request with its benign twin."""
    label = int(role == "positive")
    keys = keys or texts
    rows = [LabelledText(t, label, name, k if twins else "") for t, k in zip(texts, keys, strict=True)]
    train = [r for r, k in zip(rows, keys, strict=True) if _bucket(k) >= DEV_SHARE]
    dev = [r for r, k in zip(rows, keys, strict=True) if _bucket(k) < DEV_SHARE]
    return CategorySource(name, category, role, train, dev, FAMILIES.get(name, ""))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _instructions(path: Path) -> list[str]:
    return [r["instruction"] for r in json.loads(path.read_text(encoding="utf-8"))]


PAIR_SETS = {
    "contrast_pairs.jsonl": "pw_pairs",
    "contrast_pairs_b.jsonl": "pw_pairs_b",
    "contrast_pairs_c.jsonl": "pw_pairs_c",
    "contrast_pairs_d.jsonl": "pw_pairs_d",
}  # file -> source prefix


def contrast_pairs(file: str = "contrast_pairs.jsonl") -> list[CategorySource]:
    """The project's minimal pairs (training/data/unsafe/<file>): a harmful request and its benign twin with the same
    trigger words. Split by pair, so a dev twin's sibling is never trained on. Each file is written in its own style
    (set b: protective, medical, tech, idiom, fiction, casual-chat and multi-sentence pairs; set c: workplace, school,
    news/law, animals, money, home chemistry, relationships, health, long-context and indirect pairs; set d: gaming,
    travel, elder care, vehicles, farming, sport, exams, religious groups, journalism and housing), so each is a
    family."""
    rows = _jsonl(DATA_DIR / "unsafe" / file)
    prefix = PAIR_SETS[file]
    out = []
    for name, role, label in ((f"{prefix}_harm", "positive", 1), (f"{prefix}_benign", "lookalike", 0)):
        chosen = [r for r in rows if r["label"] == label]
        keys = [f"pair/{r['pair']}" for r in chosen]  # the split's key, unchanged since the first set (dev parts stay)
        out.append(_split(name, "unsafe", role, [r["text"] for r in chosen], keys, twins=True))
    return out


def hh_labelled(shared: Path = SHARED) -> dict[str, list[str]]:
    """hh-rlhf red-team first turns by the project's label (unsafe / safe / borderline)."""
    turns = [r["text"] for r in _jsonl(shared / "unsafe" / "hh_rlhf_red_team_first_turns.jsonl")]
    out: dict[str, list[str]] = {"unsafe": [], "safe": [], "borderline": []}
    for part in ("a", "b"):
        for row in _jsonl(DATA_DIR / "unsafe" / f"hh_red_team_labels_{part}.jsonl"):
            out[row["label"]].append(turns[row["line"] - 1])
    return out


def documents(shared: Path = SHARED, n_tables: int = 200, seed: int = 0) -> list[tuple[str, str]]:
    """(kind, text) of clean documents a chat service reads for its user: BIPIA e-mails, tables and code questions
    (train split) and the project's documents of seven kinds."""
    out = [("email", r["context"]) for r in _jsonl(shared / "injection" / "bipia_email_train.jsonl")]
    tables = _jsonl(shared / "injection" / "bipia_table_train.jsonl")
    out += [("table", r["context"]) for r in random.Random(seed).sample(tables, min(n_tables, len(tables)))]
    out += [("code", "\n".join(r["context"]) if isinstance(r["context"], list) else r["context"])
            for r in _jsonl(shared / "injection" / "bipia_code_train.jsonl")]  # fmt: skip
    out += [(r["kind"], r["text"]) for r in _jsonl(DATA_DIR / "injection" / "documents.jsonl")]
    return [(k, t[:MAX_DOC_CHARS]) for k, t in out if t.strip()]


def attacks(shared: Path = SHARED) -> dict[str, list[str]]:
    """Attack category -> instructions (BIPIA text and code attacks, train split; project-written attacks)."""
    out: dict[str, list[str]] = {}
    for name, prefix in (("bipia_text_attack_train.json", "bipia"), ("bipia_code_attack_train.json", "bipia_code")):
        for category, items in json.loads((shared / "injection" / name).read_text(encoding="utf-8")).items():
            out[f"{prefix}:{category}"] = list(items)
    for path in sorted((DATA_DIR / "injection").glob("attacks*.jsonl")):  # attacks.jsonl and later batches
        for row in _jsonl(path):
            out.setdefault(f"pw:{row['category']}", []).append(row["text"])
    return out


def insert(document: str, attack: str, position: str, rng: random.Random) -> str:
    """The attack at the document's start, end, or a line/sentence boundary near its middle."""
    if position == "start":
        return f"{attack}\n{document}"
    if position == "end":
        return f"{document}\n{attack}"
    middle = len(document) // 2
    cuts = [i for i, ch in enumerate(document) if ch == "\n" or (ch == " " and document[i - 1 : i] in (".", "!"))]
    at = min(cuts, key=lambda i: abs(i - middle)) if cuts else middle
    sep = "\n" if rng.random() < 0.5 else " "
    return f"{document[:at]}{sep}{attack}{sep}{document[at:]}"


def injected_sources(
    docs: list[tuple[str, str]], per_attack: dict[str, int], seed: int, shared: Path = SHARED
) -> list[CategorySource]:
    """One positive source per attack category; code attacks go into code documents, the rest into any kind. The
    dev/train split follows the carrier document, so a dev document is never seen in training, clean or attacked.
    `per_attack`: carriers per attack instruction, by attack family (prefix before the colon)."""
    code_docs = [t for k, t in docs if k == "code"]
    other_docs = [t for _, t in docs]
    out = []
    for category, items in sorted(attacks(shared).items()):
        rng = random.Random(f"inject/{seed}/{category}")  # per category: a new category reshuffles no other
        pool = code_docs if category.startswith("bipia_code:") else other_docs
        texts, keys = carried(items, pool, per_attack[category.split(":")[0]], rng)
        out.append(_split(f"inj:{category}", "prompt_injection", "positive", texts, keys))
    return out


def carried(lines: list[str], pool: list[str], copies: int, rng: random.Random) -> tuple[list[str], list[str]]:
    """(texts, carrier keys): each line inserted into `copies` documents drawn from `pool`, at a random position."""
    texts, keys = [], []
    for line in lines:
        for _ in range(copies):
            doc = rng.choice(pool)
            texts.append(insert(doc, line, rng.choice(("start", "middle", "end")), rng))
            keys.append(doc)
    return texts, keys


def reader_line_source(docs: list[tuple[str, str]], seed: int, copies: int = 2) -> CategorySource:
    """Look-alike `pw_reader_lines`: lines written to a document's human reader with injection vocabulary ("please
    ignore my earlier e-mail", "# ignore this warning", "forward this to the team") inserted into clean carriers
    like the attacks (code comments into code); split by carrier document."""
    rng = random.Random(f"reader/{seed}")
    code_docs = [t for k, t in docs if k == "code"]
    other_docs = [t for _, t in docs]
    texts, keys = [], []
    for row in _jsonl(DATA_DIR / "injection" / "reader_lines.jsonl"):
        pool = code_docs if row["kind"] == "code_comment" else other_docs
        t, k = carried([row["text"]], pool, copies, rng)
        texts += t
        keys += k
    return _split("pw_reader_lines", "prompt_injection", "lookalike", texts, keys)


def bastion_sources() -> list[CategorySource]:
    """The MIT `bastioncorpus` package: malicious payloads (positive) and benign false-positive traps (look-alike)."""
    rows = bastion_rows("train") + bastion_rows("val")
    malicious, traps = [r.text for r in rows if r.label == 1], [r.text for r in rows if r.label == 0]
    return [_split("bastion", "prompt_injection", "positive", malicious),
            _split("bastion_traps", "prompt_injection", "lookalike", traps)]  # fmt: skip


def template_sources(seed: int) -> list[CategorySource]:
    """The project's earlier template injections (payloads x carriers) and their benign look-alikes."""
    rows = synthetic_injections(600, seed)
    return [_split("pw_template_injections", "prompt_injection", "positive", [r.text for r in rows if r.label]),
            _split("pw_template_lookalikes", "prompt_injection", "lookalike",
                   sorted({r.text for r in rows if not r.label}))]  # fmt: skip


def category_sources(
    seed: int = 0, n_alpaca: int = 2500, shared: Path = SHARED, benign: list[str] | None = None
) -> list[CategorySource]:
    """Every built-in source of both categories. `benign`: your own ordinary traffic, replacing the Alpaca-derived
    instructions (CC BY-NC) as the main negative source."""
    unsafe_dir = shared / "unsafe"
    rng = random.Random(f"alpaca/{seed}")
    pool = benign if benign is not None else _instructions(unsafe_dir / "harmless_train.json")
    alpaca = rng.sample(pool, min(n_alpaca, len(pool)))
    hh = hh_labelled(shared)
    # project_written.jsonl and its later additions (same schema and source names; see the folder's PROVENANCE.md)
    written = [row for path in sorted((DATA_DIR / "unsafe").glob("project_written*.jsonl")) for row in _jsonl(path)]
    direct = _jsonl(DATA_DIR / "injection" / "direct.jsonl")
    # Clean documents whose requests are addressed to their human reader ("please translate this for the Madrid
    # office"): what separates an injection from them is the addressee and the override, not the imperative.
    doc_requests = [r["text"][:MAX_DOC_CHARS] for r in _jsonl(DATA_DIR / "injection" / "doc_requests.jsonl")]
    docs = documents(shared, seed=seed)
    doc_texts = [t for _, t in docs]
    # Ordinary messages full of PII (support e-mails, forms, chat): neither unsafe nor injections, and the traffic a
    # PII detector sees most. Without them a plain "send the invoice to my IBAN" message scored as an injection.
    pii_messages = [e.text for e in business_source(400, 0, seed).train + synthetic_source(400, 0, seed).train]

    def by_source(rows: list[dict], name: str) -> list[str]:
        return [r["text"] for r in rows if r["source"] == name]

    unsafe = [
        _split("advbench", "unsafe", "positive", _instructions(unsafe_dir / "harmful_train.json")),
        _split("harmbench_val", "unsafe", "positive", _instructions(unsafe_dir / "harmful_val.json")),
        _split("hh_unsafe", "unsafe", "positive", hh["unsafe"]),
        *(_split(s, "unsafe", "positive", by_source(written, s))
          for s in ("pw_harm_questions", "pw_harm_wrapped", "pw_harm_chat", "pw_harm_multilingual")),
        *(_split(s, "unsafe", "lookalike", by_source(written, s))
          for s in ("pw_benign_tech", "pw_benign_safety", "pw_benign_fiction_history", "pw_benign_multilingual")),
        _split("hh_safe", "unsafe", "lookalike", hh["safe"]),
        *(source for file in PAIR_SETS for source in contrast_pairs(file)),
        _split("alpaca", "unsafe", "negative", alpaca),
        _split("documents", "unsafe", "negative", doc_texts),
        _split("pii_messages", "unsafe", "negative", pii_messages),
    ]  # fmt: skip
    injection = [
        *injected_sources(docs, {"bipia": 6, "bipia_code": 6, "pw": 2}, seed, shared),
        *bastion_sources(),
        *template_sources(seed),
        _split("pw_direct", "prompt_injection", "positive", by_source(direct, "pw_direct")),
        _split("pw_benign_meta", "prompt_injection", "lookalike", by_source(direct, "pw_benign_meta")),
        _split("pw_doc_requests", "prompt_injection", "lookalike", doc_requests),
        reader_line_source(docs, seed),
        _split("hh_safe", "prompt_injection", "lookalike", hh["safe"]),
        _split("documents", "prompt_injection", "negative", doc_texts),
        _split("alpaca", "prompt_injection", "negative", alpaca),
        _split("pii_messages", "prompt_injection", "negative", pii_messages),
    ]
    return unsafe + injection
