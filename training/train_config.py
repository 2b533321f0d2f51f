"""Training configuration: TOML -> frozen dataclasses through `detector.typed_config.build_config` (the one typed
reader: unknown or mistyped keys are errors naming the key)."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from probeguard.detector.errors import ConfigError
from probeguard.detector.heads.pooling import POOLINGS
from probeguard.detector.typed_config import build_config
from probeguard.training.attention_select import AttentionRecipe
from probeguard.training.category_select import parse_candidate

PII_HEAD_KINDS = ("linear", "mlp", "sae")
_CANDIDATE = re.compile(r"L\d+(\+\d+)*/[a-z-]+")  # a category candidate key, as category_select writes it
# pooled SequenceLinearHead poolings, the two head types, then SAE-feature heads on pooled codes (training.sae_select)
KNOWN_POOLINGS = (*POOLINGS, "window-max", "attention", "sae-max", "sae-mean")
CHOICE_PARTS = ("pii", "unsafe", "prompt_injection")  # what a training run selects, or refits (`[choices]`)


@dataclass(frozen=True)
class BundleSection:
    name: str = "probeguard-base"
    version: str = "0.0.0"
    out: str = "bundles/probeguard-base/0.0.0"  # relative paths are relative to the config file's repo root


@dataclass(frozen=True)
class DataSection:
    shared_dir: str = "../shared/data"  # pii_real/, unsafe/, injection/ (read-only inputs)
    # Train-part sizes per PII source (texts); each source's dev part is kept whole for the dev suite.
    n_wikigold: int = 2000
    n_btc: int = 5000
    n_wnut17: int = 3000
    n_business: int = 1500  # project-written frames filled with Faker values
    n_synthetic: int = 2000  # chat/form/log template generator
    n_code: int = 300  # chunks of the Python standard library's source, as PII-free text
    n_records: int = 200  # chunks of installed packages' RECORD files (hashes that are not secrets), PII-free
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
    # Candidates for leave-one-source-out selection; one layer, lookahead and head = no selection.
    layers: list[int] = field(default_factory=lambda: [6, 8, 10])
    lookaheads: list[int] = field(default_factory=lambda: [4])
    # Head types, selected like the layer: linear (TokenLinearHead) | mlp (TokenMLPHead, one hidden layer) | sae (an
    # SAEFeatureHead on the [sae] SAE's codes at the token and its lookahead; only at the SAE's layer; needs [sae]).
    heads: list[str] = field(default_factory=lambda: ["linear", "mlp"])
    hidden: int = 64  # mlp hidden units (~0.4 % of eight Gemma 3 270M blocks per token at lookahead 4)
    # F1 differences below this are ties (worst source first, then the mean over sources; then the cheapest): a refit
    # with another seed moves a dev source by 0.01-0.04.
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
    # family; the costliest candidate to select, minutes per category on 2 cores) | sae-max, sae-mean (an
    # SAEFeatureHead: L1 logistic regression on the [sae] SAE's codes pooled over the text; needs [sae] enabled)
    poolings: list[str] = field(default_factory=lambda: ["mean", "window-max"])
    # prompt_injection's candidates when not empty (its many held-out attack categories make each window-max or
    # attention candidate a long leave-one-out run; narrow the list once an offline run has compared them).
    injection_poolings: list[str] = field(default_factory=list)
    target_fpr: float = 0.01  # thresholds: this false-positive rate on negatives of several kinds
    # true: the threshold keeps *every* negative kind (instructions, documents, PII-rich messages) within target_fpr;
    # false: one pooled rate, where many easy instructions can hide a hard kind (documents).
    per_kind_threshold: bool = True
    max_lookalike_fpr: float = 0.05  # a candidate that flags more of any look-alike source ranks last
    # A candidate whose held-out negatives (30 % of every negative kind, never fitted or thresholded on) are flagged
    # more than this, averaged over the leave-one-out folds, ranks below every one within it: recall cannot be bought
    # with a threshold that is looser on unseen documents. Each fold fits two models, each thresholded on the half of
    # the negatives it did not fit (training.fit.threshold_halves), as the served head is.
    max_negative_fpr: float = 0.02
    regularization: float = 0.1  # logistic regression C (smaller = stronger L2)
    injection_regularization: float = 0.3  # C for prompt_injection alone (unsafe keeps `regularization`)
    # Weight of each look-alike row in the fit: higher flags fewer look-alikes and costs worst-source recall; raise it
    # when your look-alikes matter more than recall.
    lookalike_weight: float = 1.0
    # Worst-source recall differences below this are ties, broken by the mean held-out recall: the worst source is
    # often a 20-30 text attack category, whose recall has a 95 % interval of about +-0.16.
    tolerance: float = 0.15
    # Passes over the train texts per attention-pooled fit (leave-one-out folds, calibration folds, the served head);
    # cost is linear in it.
    attention_epochs: int = 20
    # Fits averaged into each attention-pooled head (seeds seed, seed + 1, ...; training.attention_select.merge_heads)
    # and into every fold's model: narrows the spread between seeds; cost and served head size are linear in it.
    attention_fits: int = 1
    # Attention queries per fit of unsafe's head, trained jointly (each its own softmax over the tokens and its own
    # value direction); each adds 2 x d_model weights.
    attention_queries: int = 16
    # The same for prompt_injection's head.
    injection_attention_queries: int = 4
    # Weight of a ranking loss on the minimal pairs (each harmful request scored above its benign twin,
    # training.attention_select.twin_pairs), added to the attention heads' BCE; 0 turns it off. Pairs exist for unsafe
    # only. The study that set it to 0: experiments/README.md.
    pair_weight: float = 0.0

    def __post_init__(self) -> None:
        known = KNOWN_POOLINGS
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
class SAESection:
    """The bundle's sparse autoencoder, on the layer the category heads read: what explanations are written in. It is
    stored in the bundle but read by no served head, so the plain detect path does not compute it."""

    enabled: bool = True
    texts_per_source: int = 200  # train-part texts of every source (never a dev part) the SAE is fitted on
    d_sae: int = 4096  # dictionary size; stored in fp16, ~5 kB per feature at d_model 640
    k: int = 32  # active features per token (TopK)
    steps: int = 2000  # SAELens steps of batch_tokens tokens each
    batch_tokens: int = 1024
    lr: float = 5e-4

    def __post_init__(self) -> None:
        for key in ("texts_per_source", "d_sae", "k", "steps", "batch_tokens"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"sae.{key} must be a positive integer, got {value!r}")
        if self.k > self.d_sae:
            raise ConfigError(f"sae.k ({self.k}) must not exceed sae.d_sae ({self.d_sae})")
        if not 0.0 < self.lr < 1.0:
            raise ConfigError(f"sae.lr must be in (0, 1), got {self.lr}")


@dataclass(frozen=True)
class TraceSection:
    """The layer trace (training.layer_trace): a mean-pooled probe per category at every layer of the host, from one
    full-host pass over the category sources (pooled activations only), stored under trace/ in the bundle (~100 KB
    for 2 categories x 19 layers x 640). `probeguard trace` and the console's /v1/trace read it."""

    enabled: bool = True


@dataclass(frozen=True)
class ChoicesSection:
    """Choices a run refits instead of selecting: the PII head as "L<layer>/<linear|mlp>" (its lookahead and hidden
    units are [pii]'s, one value each), a category as its selection candidate ("L8/attention", "L6+8/mean"). An empty
    entry is selected from the candidate lists as usual."""

    pii: str = ""
    unsafe: str = ""
    prompt_injection: str = ""

    def __post_init__(self) -> None:
        if self.pii:
            self.pii_layer_and_head()
        for category in ("unsafe", "prompt_injection"):
            self.category(category)

    def pii_layer_and_head(self) -> tuple[int, str]:
        layer, _, head = self.pii.partition("/")
        if not layer.startswith("L") or not layer[1:].isdigit() or head not in PII_HEAD_KINDS:
            raise ConfigError(f"choices.pii: expected 'L<layer>/<{'|'.join(PII_HEAD_KINDS)}>', got {self.pii!r}")
        return int(layer[1:]), head

    def category(self, name: str) -> tuple[tuple[int, ...], str] | None:
        """(layers, pooling) of a fixed category choice, or None when it is selected."""
        key = getattr(self, name)
        if not key:
            return None
        if not _CANDIDATE.fullmatch(key) or key.partition("/")[2] not in KNOWN_POOLINGS:
            raise ConfigError(f"choices.{name}: expected 'L<layer>[+<layer>]/<pooling>', got {key!r}")
        return parse_candidate(key)  # the selection's own candidate key

    def fixed_parts(self) -> list[str]:
        return [p for p in CHOICE_PARTS if getattr(self, p)]


@dataclass(frozen=True)
class TrainConfig:
    bundle: BundleSection = field(default_factory=BundleSection)
    data: DataSection = field(default_factory=DataSection)
    pii: PiiSection = field(default_factory=PiiSection)
    categories: CategorySection = field(default_factory=CategorySection)
    sae: SAESection = field(default_factory=SAESection)
    trace: TraceSection = field(default_factory=TraceSection)
    host: str = ""  # model folder; empty = the packaged Gemma 3 270M
    # Arithmetic the bundle is served with, and so the one its activations are harvested from: fp32 (exact) or int8
    # (the dynamically quantised host graph, ~2.3x faster on CPU; heads trained on its activations, see README).
    variant: str = "fp32"
    # The design refit as it is instead of selected again (`[choices]`): how a variant or a retrain on new data keeps
    # the layers and head types fixed, so selection noise does not pass for an effect of the change.
    choices: ChoicesSection = field(default_factory=lambda: ChoicesSection())
    # A fixed category choice still gets its leave-one-family-out table, measured on this run's activations (tens of
    # minutes per attention head on 2 cores); false refits it without one (the report then shows its dev suite only,
    # which is what `loadtest.variants` compares variants on anyway).
    evaluate_fixed: bool = True
    seed: int = 0
    threads: int = 1
    root: str = "."  # resolved: folder relative paths are taken from (the repo root)

    def __post_init__(self) -> None:
        if self.variant not in ("fp32", "int8"):
            raise ConfigError(f"variant must be fp32 or int8, got {self.variant!r}")
        wants_sae = "sae" in self.pii.heads or self.choices.pii.endswith("/sae")
        if wants_sae and not self.sae.enabled:
            raise ConfigError("pii: an sae head reads the [sae] SAE's codes; enable [sae] or drop it from pii.heads")

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
