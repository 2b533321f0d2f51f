"""Evaluation report next to the bundle: report.md, metrics.json and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_per_label(entity: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    plt = _plt()
    labels = sorted(entity)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, metric in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (i - 1) * 0.27, [entity[k][metric] for k in labels], width=0.27, label=metric)
    ax.set_xticks(x, labels, rotation=40, ha="right")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """Token-level precision-recall per label, from (probabilities, 0/1 targets)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 5))
    for label, (probs, y) in sorted(curves.items()):
        order = np.argsort(-probs)
        tp = np.cumsum(y[order])
        if tp[-1] == 0:
            continue
        precision = tp / np.arange(1, len(tp) + 1)
        recall = tp / tp[-1]
        ax.plot(recall, precision, label=label, linewidth=1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Token-level PR curves (calibration split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_linear_vs_sae(comparison: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    plt = _plt()
    names = sorted(comparison)
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(names))
    for i, kind in enumerate(("linear", "sae")):
        ax.bar(x + (i - 0.5) * 0.35, [comparison[n][kind]["val_auroc"] for n in names], width=0.35, label=kind)
        ax.bar(x + (i - 0.5) * 0.35, [comparison[n][kind]["val_recall"] for n in names], width=0.12, color="k",
               alpha=0.5, label="recall at threshold" if i == 0 else None)  # fmt: skip
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.02)
    ax.set_title("Category heads: validation AUROC (bars) and recall at the FPR threshold (thin)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _entity_table(name: str, scores: dict[str, Any]) -> list[str]:
    micro, overlap = scores["micro"], scores["micro_overlap"]
    summary = (
        f"micro exact: P {micro['precision']:.3f} R {micro['recall']:.3f} F1 **{micro['f1']:.3f}** · "
        f"overlap F1 {overlap['f1']:.3f} (support {micro['support']})"
    )
    lines = [f"### {name}", "", summary, "", "| label | P | R | F1 | support |", "|---|---|---|---|---|"]
    for label, s in sorted(scores["per_label"].items()):
        lines.append(f"| {label} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['support']} |")
    return [*lines, ""]


def write_report(out: Path, metrics: dict[str, Any]) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    sweep, cats = metrics["sweep"], metrics["categories"]
    lines = [
        f"# {metrics['bundle']} — evaluation report",
        "",
        f"Host `{metrics['host']}`; layers read {metrics['layers']} of {metrics['host_layers']} "
        f"(the host runs {max(metrics['layers'])} blocks). Trained in {metrics['train_seconds']:.0f} s with "
        f"{metrics['threads']} thread(s) on {metrics['machine']}. All figures below are computed by "
        "`probeguard train` on the project's own validation data (never on evaluation benchmarks).",
        "",
        "## Layer sweep",
        "",
        f"Chosen (smallest layer within {sweep['tolerance']} of the best): {sweep['chosen']}.",
        "",
        "| layer | " + " | ".join(f"{k} ({sweep['metric'][k]})" for k in sweep["scores"]) + " |",
        "|---|" + "---|" * len(sweep["scores"]),
        *[f"| {layer} | " + " | ".join(f"{sweep['scores'][k][i]:.3f}" for k in sweep["scores"]) + " |"
          for i, layer in enumerate(sweep["layers"])],
        "",
        "![layer sweep](layer_sweep.png)",
        "",
        "## PII spans (entity level, exact boundaries)",
        "",
        *_entity_table("In-distribution (train templates, unseen values)", metrics["pii"]["calibration"]),
        *_entity_table("Held-out templates", metrics["pii"]["heldout_templates"]),
        *_entity_table(f"Held-out locale ({metrics['pii']['heldout_locale_name']})", metrics["pii"]["heldout_locale"]),
        "![per label](pii_per_label.png) ![pr curves](pii_pr_curves.png)",
        "",
        "## Categories",
        "",
        "| category | head | served | pooling | val AUROC | threshold | recall | FPR | shifted recall | shifted FPR |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, kinds in cats.items():
        for kind, r in kinds.items():
            if not isinstance(r, dict) or "val" not in r:
                continue
            sh = r.get("shifted") or {}
            lines.append(
                f"| {name} | {kind} | {'yes' if r['served'] else 'no'} | {r['detail'].get('pooling', '')} | "
                f"{r['val']['auroc']:.3f} | {r['val']['threshold']:.3f} | {r['val']['recall']:.3f} | "
                f"{r['val']['fpr']:.3f} | {sh.get('recall', float('nan')):.3f} | {sh.get('fpr', float('nan')):.3f} |"
            )
    sae = json.dumps(metrics.get("sae", {}))
    decisions = [f"- {w}" for w in metrics.get("decisions", [])]
    lines += ["", "![linear vs SAE](linear_vs_sae.png)", "", "## SAE", "", f"`{sae}`", "", "## Decisions", "",
              *decisions, ""]  # fmt: skip
    (out / "report.md").write_text("\n".join(lines))
