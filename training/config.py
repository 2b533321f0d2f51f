"""Training configuration: TOML -> frozen dataclasses through `detector.config.build_config` (the one typed reader:
unknown or mistyped keys are errors naming the key)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from detector.config import build_config
from detector.errors import ConfigError
from detector.heads.pooling import POOLINGS
from training.attention_select import AttentionRecipe

PII_HEAD_KINDS = ("linear", "mlp")
CHOICE_PARTS = ("pii", "unsafe", "prompt_injection")  # what a training run selects, or refits (`choices_fixed`)


@dataclass(frozen=True)
class BundleSection:
    name: str = "probeguard-base"
    version: str = "0.6.0"
    out: str = "models/probeguard-base/0.6.0"  # relative paths are relative to the config file's repo root


@dataclass(frozen=True)
class DataSection:
    shared_dir: str = "../shared/data"  # pii_real/, unsafe/, injection/ (read-only inputs)
    # Train-part sizes per PII source (texts); each source's dev part is kept whole for the dev suite.
    n_wikigold: int = 2000
    n_btc: int = 3000
    n_wnut17: int = 2000
    n_business: int = 1500  # project-written frames filled with Faker values
    n_synthetic: int = 2000  # chat/form/log template generator
    n_code: int = 300  # chunks of the Python standard library's source, as PII-free text
    n_records: int = 0  # chunks of installed packages' RECORD files (hashes that are not secrets), PII-free
    n_alpaca: int = 2500  # ordinary instructions: the category heads' main negative source
    max_dev_texts: int = 0  # cap on each source's dev part (0 = all; smoke runs only: the report gets noisier)
    max_category_train: int = 0  # cap on each category source's train part (0 = all; smoke runs only)
    # Positive and look-alike sources kept per category and role (0 = all; smoke runs only): each one is a held-out
    # fold of the selection, so fewer sources make it faster and less trustworthy. Negatives are always kept.
    max_category_sources: int = 0
    benign_files: list[str] = field(default_factory=list)  # your own benign traffic (labelled JSONL) replaces Alpaca
    span_files: list[str] = field(default_factory=list)  # extra span JSONL for the PII head (one source per file)
    labelled_files: list[str] = field(default_factory=list)  # extra labelled JSONL for category heads


@dataclass(frozen=True)
class PiiSection:
    # Candidates for leave-one-source-out selection; one layer and one lookahead = no selection.
    layers: list[int] = field(default_factory=lambda: [6, 8, 10])
    lookaheads: list[int] = field(default_factory=lambda: [4])
    # Head types, selected like the layer: linear (TokenLinearHead) | mlp (TokenMLPHead, one hidden layer). 0.5.0's
    # run: see the bundle report's selection table for what each scored on every held-out source.
    heads: list[str] = field(default_factory=lambda: ["linear", "mlp"])
    hidden: int = 64  # mlp hidden units (~0.4 % of eight Gemma 3 270M blocks per token at lookahead 4)
    # F1 differences below this are ties (worst source first, then the mean over sources; then the cheapest). 0.03:
    # an fp32 refit with another seed moved one dev source by up to 0.043 and most by 0.01-0.03. At 0.01 the 0.6.0
    # run picked a linear head for 0.028 on the worst source (btc) while it lost 0.04-0.07 on the four others.
    tolerance: float = 0.03
    select_epochs: int = 3  # per LOSO fit (cheaper than the final fit)
    epochs: int = 6
    max_structured_per_1000: float = 5.0  # a candidate over this on PII-free text ranks last

    def __post_init__(self) -> None:
        unknown = [h for h in self.heads if h not in PII_HEAD_KINDS]
        if unknown or not self.heads:
            raise ConfigError(f"pii.heads: {unknown or 'empty'}; choose from {list(PII_HEAD_KINDS)}")
        if self.hidden < 1:
            raise ConfigError(f"pii.hidden must be a positive integer, got {self.hidden}")


@dataclass(frozen=True)
class CategorySection:
    layers: list[int] = field(default_factory=lambda: [6, 8, 10])
    # Further candidates that concatenate several layers' pooled activations (e.g. [[6, 8]]; pooled poolings only,
    # not window-max or attention). Free to serve when the host runs past them anyway; selected like single layers.
    layer_sets: list[list[int]] = field(default_factory=list)
    # mean | max | rolling-mean-max (a pooled SequenceLinearHead) | window-max (a WindowMaxHead, fitted MIL-style) |
    # attention (an AttentionPoolHead: learned softmax weights over tokens, fitted with torch, one fit per held-out
    # family: ~5 min for unsafe, more for prompt_injection's 46 attack categories on 2 cores; listed in default.toml)
    poolings: list[str] = field(default_factory=lambda: ["mean", "window-max"])
    # prompt_injection's candidates when not empty (its 46 held-out attack categories make each attention or
    # window-max candidate a 10-30 min leave-one-out run on 2 cores; narrow it once an offline run has compared them).
    injection_poolings: list[str] = field(default_factory=list)
    target_fpr: float = 0.01  # thresholds: this false-positive rate on negatives of several kinds
    # true: the threshold keeps *every* negative kind (instructions, documents, PII-rich messages) within target_fpr;
    # false (0.3.0): pooled, where many easy instructions hide a hard kind (documents: 9 % dev FPR at a pooled 1 %).
    # Measured for prompt_injection L8/mean, held out by attack category: per kind cuts held-out negative FPR to 1.6 %
    # but median recall falls from 0.77 to 0.51; with window-max (MIL) heads median recall stays 0.89 (0.4.0 default).
    per_kind_threshold: bool = True
    max_lookalike_fpr: float = 0.05  # a candidate that flags more of any look-alike source ranks last
    # A candidate whose held-out negatives (30 % of every negative kind, never fitted or thresholded on) are flagged
    # more than this, averaged over the leave-one-out folds, ranks below every one within it: the full selection on
    # 0.9.0's data chose L6+8/mean for prompt_injection by worst recall bought with 3.9 % here (window-max: 1.6 %).
    # 2x target_fpr: the done-when of issue 10 allows 2 % on clean documents. Those figures had fold thresholds set on
    # negatives the fold's model fitted; since 0.10.0 each fold fits two models, each thresholded on the half of the
    # negatives it did not fit (training.fit.threshold_halves), as the served head is; unsafe's held-out negatives
    # then sit at 0.5-1.0 % for every candidate (in-sample: 1.3-2.6 %), so this budget rarely binds.
    max_negative_fpr: float = 0.02
    regularization: float = 0.1  # logistic regression C (smaller = stronger L2)
    # C for prompt_injection alone. On the data with the override attacks and reader lines (L8 window-max, held out
    # by attack category or family): C 0.3 vs 0.1 raised worst recall 0.07 vs 0.00, mean 0.719 vs 0.701, median AUROC
    # vs clean documents 0.952 both, held-out negative FPR 1.24 % vs 1.07 %. unsafe keeps `regularization` (C moved it
    # along one recall-vs-look-alike curve).
    injection_regularization: float = 0.3
    # Weight of each look-alike row in the fit. Leave-one-family-out on 0.3.0's data (layers 6/8, mean pooling):
    # weights 4 and 10 cut held-out look-alike FPR (benign tech 0.74 -> 0.45) but cost more worst-source recall
    # (0.65 -> 0.51) than they saved, so 1 ranks best; raise it when your look-alikes matter more than recall.
    lookalike_weight: float = 1.0
    # Worst-source recall differences below this are ties, broken by the mean held-out recall: the worst source is
    # often a 20-30 text attack category, whose recall near 0.2 has a 95 % interval of about +-0.16. 0.8.0's first
    # run without it chose L6+8/mean for prompt_injection on worst recall 0.28 vs window-max's 0.17, although
    # window-max led on the mean (0.78 vs 0.74), median AUROC vs clean documents (0.963 vs 0.917) and dev FPR.
    tolerance: float = 0.15
    # Passes over the train texts per attention-pooled fit (leave-one-out folds, calibration folds, the served head).
    # 20: 10 left unsafe's worst held-out recall lower offline; cost is linear (about 13 s per fit at 20, layer 8).
    attention_epochs: int = 20
    # Fits averaged into each attention-pooled head (seeds seed, seed + 1, ...; training.attention_select.merge_heads),
    # and into every fold's model. One fit's seed alone moved unsafe's dev recall on a source by up to 0.18 and its
    # threshold 0.32-0.38 (0.11.0's data, L8, three seeds): more than the int8-vs-fp32 gap the variant table judges.
    # Cost and served head size are linear in it (4 queries per fit).
    attention_fits: int = 1
    # Attention queries per fit of unsafe's head, trained jointly (each its own softmax over the tokens and its own
    # value direction). Held out by family (L8, 0.11.0's data with the fourth pair set, the selection's folds and
    # threshold rule), 16 vs 4 queries at `--seed` 0 / 1 (category_select): AUROC against benign twins higher on all
    # six families both times, mean 0.927 / 0.925 vs 0.901 / 0.907; worst recall at the out-of-fold threshold
    # 0.72 / 0.71 vs 0.56 / 0.61, mean 0.84 / 0.84 vs 0.74 / 0.73; look-alike FPR mean 13.1 / 11.3 vs 11.9 / 11.0 %.
    # 8 queries: 0.916; 32: 0.927, more look-alikes flagged (README).
    attention_queries: int = 16
    # The same for prompt_injection (0.11.0's head: 4). 16, with 12 families (16 attack sources) held out
    # (category_select --hold-out, 2026-12-06): AUROC against clean documents up on 14 of 16 sources (BIPIA Language
    # Translation 0.70 -> 0.86), recall up on 13; the next refit should take 16 (README).
    injection_attention_queries: int = 4
    # Weight of a ranking loss on the minimal pairs in the fit (each harmful request scored above its benign twin,
    # training.attention_select.twin_pairs), added to the attention heads' BCE; 0 turns it off. Pairs exist for unsafe
    # only, so prompt_injection's heads are unaffected. Held out by family (L8, 16 queries), 0 / 1 / 3: AUROC against
    # twins mean 0.927 / 0.928 / 0.929, worst recall 0.72 / 0.71 / 0.71: no gain (README).
    pair_weight: float = 0.0

    def __post_init__(self) -> None:
        known = (*POOLINGS, "window-max", "attention")
        unknown = [p for p in self.poolings if p not in known]
        if unknown or not self.poolings:
            raise ConfigError(f"categories.poolings: {unknown or 'empty'}; choose from {list(known)}")
        unknown = [p for p in self.injection_poolings if p not in known]
        if unknown:
            raise ConfigError(f"categories.injection_poolings: {unknown}; choose from {list(known)}")
        if not isinstance(self.attention_epochs, int) or self.attention_epochs < 1:
            raise ConfigError(f"categories.attention_epochs must be a positive integer, got {self.attention_epochs!r}")
        if not isinstance(self.attention_fits, int) or not 1 <= self.attention_fits <= 16:
            raise ConfigError(f"categories.attention_fits must be an integer in 1..16, got {self.attention_fits!r}")
        for key in ("attention_queries", "injection_attention_queries"):
            value = getattr(self, key)
            if not isinstance(value, int) or not 1 <= value <= 64:
                raise ConfigError(f"categories.{key} must be an integer in 1..64, got {value!r}")
        if not isinstance(self.pair_weight, int | float) or not 0.0 <= self.pair_weight <= 100.0:
            raise ConfigError(f"categories.pair_weight must be a number in [0, 100], got {self.pair_weight!r}")
        if not 0.0 <= self.tolerance < 1.0:
            raise ConfigError(f"categories.tolerance must be in [0, 1), got {self.tolerance}")
        if min(self.regularization, self.injection_regularization) <= 0.0:
            raise ConfigError("categories.regularization and injection_regularization must be > 0")
        for key in ("max_lookalike_fpr", "max_negative_fpr"):
            if not 0.0 < getattr(self, key) <= 1.0:
                raise ConfigError(f"categories.{key} must be in (0, 1], got {getattr(self, key)}")
        for layer_set in self.layer_sets:
            if len(layer_set) < 2 or len(set(layer_set)) != len(layer_set):
                raise ConfigError(f"categories.layer_sets: {layer_set} must name two or more distinct layers")

    def regularization_for(self, category: str) -> float:
        return self.injection_regularization if category == "prompt_injection" else self.regularization

    def attention_recipe(self, category: str) -> AttentionRecipe:
        queries = self.injection_attention_queries if category == "prompt_injection" else self.attention_queries
        return AttentionRecipe(epochs=self.attention_epochs, fits=self.attention_fits, queries=queries,
                               pair_weight=self.pair_weight)  # fmt: skip

    def poolings_for(self, category: str) -> list[str]:
        return self.injection_poolings if category == "prompt_injection" and self.injection_poolings else self.poolings

    def candidate_layers(self) -> list[tuple[int, ...]]:
        """Every layer candidate: each single layer, then each layer set."""
        return [(k,) for k in self.layers] + [tuple(s) for s in self.layer_sets]


@dataclass(frozen=True)
class TrainConfig:
    bundle: BundleSection = field(default_factory=BundleSection)
    data: DataSection = field(default_factory=DataSection)
    pii: PiiSection = field(default_factory=PiiSection)
    categories: CategorySection = field(default_factory=CategorySection)
    host: str = ""  # model folder; empty = the packaged Gemma 3 270M
    # Arithmetic the bundle is served with, and so the one its activations are harvested from: fp32 (exact) or int8
    # (the dynamically quantised host graph, ~2.3x faster on CPU; heads trained on its activations, see README).
    variant: str = "fp32"
    # A bundle folder whose choices (PII layer/lookahead/head, each category's layer/pooling) are refit here instead
    # of selected again: how a quantised variant is trained, so the variant comparison holds the design fixed and
    # selection noise (0.02-0.06 worst-source F1 between candidates) does not pass for an arithmetic effect.
    choices_from: str = ""
    # Which of those choices are taken ("pii", "unsafe", "prompt_injection"); the others are selected again. Only the
    # categories re-selected is ~20 min cheaper than a full selection when a new category candidate is tried.
    choices_fixed: list[str] = field(default_factory=lambda: list(CHOICE_PARTS))
    # A fixed category choice still gets its leave-one-family-out table, measured on this run's activations (held-out
    # figures of the refit: ~35 min for 0.11.0's two attention heads on 2 cores); false refits it without one (the
    # report then shows its dev suite only, which is what `loadtest.variants` compares variants on anyway).
    evaluate_fixed: bool = True
    seed: int = 0
    threads: int = 1
    root: str = "."  # resolved: folder relative paths are taken from (the repo root)

    def __post_init__(self) -> None:
        if self.variant not in ("fp32", "int8"):
            raise ConfigError(f"variant must be fp32 or int8, got {self.variant!r}")
        unknown = [p for p in self.choices_fixed if p not in CHOICE_PARTS]
        if unknown:
            raise ConfigError(f"choices_fixed: {unknown} unknown; choose from {list(CHOICE_PARTS)}")

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(self.root) / p


def load_config(path: Path) -> TrainConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {type(exc).__name__}: {exc}") from None
    root = path.resolve().parent.parent.parent if path.resolve().parent.name == "configs" else path.resolve().parent
    config = build_config(TrainConfig, data, "")
    return dataclasses.replace(config, root=str(root))
