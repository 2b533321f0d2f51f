"""Draw layer traces (detector.trace) with matplotlib: per traced text, each category's score by layer (its
threshold dashed, the served layer marked) over a heat strip of per-token scores at the served layer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from probeguard.detector.errors import ConfigError
from probeguard.detector.trace import LayerTrace

MAX_TOKEN_LABELS = 60  # tick labels on the heat strip; longer texts are drawn without them


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--png needs matplotlib: pip install 'probeguard[train]'") from None
    return plt


def draw_traces(traces: Sequence[tuple[str, str, LayerTrace]], path: Path) -> None:
    """`traces`: (label, text, trace) per traced text; one PNG with two panels per text."""
    plt = _pyplot()
    fig, axes = plt.subplots(2 * len(traces), 1, figsize=(10, 4.2 * len(traces)), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1] * len(traces)})  # fmt: skip
    for i, (label, text, trace) in enumerate(traces):
        top, strip = axes[2 * i, 0], axes[2 * i + 1, 0]
        for name, c in trace.categories.items():
            (line,) = top.plot(trace.layers, c.scores, marker="o", label=name)
            top.plot(trace.layers, c.thresholds, linestyle="--", color=line.get_color(), alpha=0.6)
        top.axvline(trace.served_layer, color="grey", linewidth=0.8)
        top.set(title=f"{label}: score by layer (dashed: threshold; grey: served layer {trace.served_layer})",
                xlabel="layer (residual stream after k blocks)", ylabel="score", ylim=(-0.02, 1.02))  # fmt: skip
        top.legend(loc="upper left")
        names = list(trace.categories)
        grid = [[t.scores[n] for t in trace.tokens] for n in names]  # [categories, tokens]
        strip.imshow(grid, aspect="auto", cmap="Reds", vmin=0.0, vmax=1.0, interpolation="nearest")
        strip.set_yticks(range(len(names)), names)
        if len(trace.tokens) <= MAX_TOKEN_LABELS:
            strip.set_xticks(range(len(trace.tokens)), [text[t.start : t.end] for t in trace.tokens], rotation=90,
                             fontsize=7)  # fmt: skip
        else:
            strip.set_xlabel(f"{len(trace.tokens)} tokens")
        strip.set_title(f"per-token score at layer {trace.served_layer}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
