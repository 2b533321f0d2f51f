"""Evaluation report next to the bundle: report.md, metrics.json and PNG plots. Leave-one-source-out selection
tables first (what chose the layers, lookahead and pooling), then the dev suite through the saved bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from probeguard.training.category_select import mean_recall
from probeguard.training.devsuite import render_markdown
from probeguard.training.train_config import CHOICE_PARTS

# What a version derived from another (heads unchanged) adds, when its metrics do not say.
EXPLAIN_ADDS = "the SAE and the explain artifacts (`python -m probeguard.training.explain_stage`)"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_dev_sources(pii: dict[str, Any], path: Path) -> None:
    """Dev entity F1 per source, probeguard beside Presidio."""
    plt = _plt()
    names = [n for n, r in pii["sources"].items() if "f1" in r["probeguard"]]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, [pii["sources"][n]["probeguard"]["f1"] for n in names], width=0.4, label="probeguard")
    ax.bar(x + 0.2, [pii["sources"][n].get("presidio", {}).get("f1", 0.0) for n in names], width=0.4, label="Presidio")
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1)
    ax.set_title("PII entity F1 on each source's dev part (half-overlap matching)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_category_loso(selection: dict[str, Any], path: Path) -> None:
    """Chosen candidate per category: recall at the target FPR on each held-out positive source."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(selection), figsize=(6 * len(selection), 4), squeeze=False)
    for ax, (category, sel) in zip(axes[0], selection.items(), strict=True):
        if not sel["candidates"]:  # refit without a leave-one-out table
            ax.set_axis_off()
            ax.set_title(f"{category} ({sel['chosen']}): no held-out table (refit)", fontsize=9)
            continue
        rows = sel["candidates"][sel["chosen"]]["by_source"]
        names = [n for n, r in rows.items() if r["role"] == "positive"]
        ax.barh(names, [rows[n]["recall"] for n in names])
        ax.set_xlim(0, 1)
        ax.set_title(f"{category} ({sel['chosen']}): held-out recall", fontsize=9)
        ax.tick_params(axis="y", labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_trace_depth(trace: dict[str, Any], path: Path) -> None:
    """The layer trace's depth curve: per category, the worst and the median positive source's dev AUROC by layer."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    layers = trace["layers"]
    for category, r in trace["by_category"].items():
        if not r["dev_auroc_by_source"]:
            continue
        grid = np.array(list(r["dev_auroc_by_source"].values()))  # [sources, layers]
        (line,) = ax.plot(layers, grid.min(0), marker="o", label=f"{category}: worst source")
        ax.plot(layers, np.median(grid, 0), linestyle="--", color=line.get_color(), label=f"{category}: median")
    ax.axvline(trace["served_layer"], color="grey", linewidth=0.8)
    ax.set(xlabel="layer (residual stream after k blocks)", ylabel="dev AUROC vs pooled negatives",
           title="Layer trace: where each category becomes readable (grey: the served layer)")  # fmt: skip
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pii_selection(sel: dict[str, Any]) -> list[str]:
    if not sel["candidates"]:
        return [
            f"One candidate configured: {_pii_choice(sel['chosen'])}.",
            "",
        ]
    sources = list(next(iter(sel["candidates"].values()))["by_source"])
    lines = ["| candidate | worst | mean | " + " | ".join(sources) + " |", "|---|---|---|" + "---|" * len(sources)]
    for key, c in sel["candidates"].items():
        cells = [f"{r['f1']:.3f}" if "f1" in r else f"{r['structured_per_1000']}/1k" for r in c["by_source"].values()]
        mean = f"{c['mean']:.3f}" if "mean" in c else "—"
        lines.append(f"| {key} | {c['worst']:.3f} | {mean} | " + " | ".join(cells) + " |")
    rule = (f" (the shallowest candidate within {sel['tolerance']} of the best worst-source F1, then of the best "
            "mean)" if sel.get("tolerance") else " (the best worst-source F1)")  # fmt: skip
    return [*lines, "", f"Chosen: {_pii_choice(sel['chosen'])}{rule}.", ""]


def _pii_choice(chosen: dict[str, Any]) -> str:
    head = chosen.get("head", "linear")
    kind = "linear head" if head == "linear" else f"{head} head ({chosen.get('hidden')} hidden units)"
    return f"layer {chosen['layer']}, lookahead {chosen['lookahead']}, {kind}"


def _category_selection(category: str, sel: dict[str, Any]) -> list[str]:
    calibration = (f"threshold {sel['threshold']} (calibration AUROC {sel['calibration_auroc']}, recall "
                   f"{sel['calibration_recall']} at the target FPR; out-of-fold scores of every train row, "
                   f"{sel['calibration_negatives']} negatives of several kinds)")  # fmt: skip
    if "attention_queries" in sel:
        calibration += f"; {sel['attention_queries']} attention queries per fit"
    if sel.get("pair_weight", 0) > 0:
        calibration += f"; ranking loss on {sel['twin_pairs']} minimal pairs at weight {sel['pair_weight']}"
    if sel.get("attention_fits", 1) > 1:
        calibration += f"; the head is the sum of {sel['attention_fits']} fits from consecutive seeds"
    if not sel["candidates"]:
        return [f"### {category}", "", f"Fixed **{sel['chosen']}**, refit without its leave-one-out table "
                "(`evaluate_fixed = false`): the dev suite below is this head's only measure; " + calibration + ".",
                ""]  # fmt: skip
    tolerance = sel.get("tolerance", 0.0)
    rule = (f" (ranks within {tolerance} of the best are ties, broken by the mean held-out recall)" if tolerance
            else "")  # fmt: skip
    lines = [f"### {category}", "",
             "| candidate | rank (worst held-out recall, −1 per budget broken) | mean recall |",
             "|---|---|---|",
             *[f"| {k} | {c['rank']:.3f} | {mean_recall(c['by_source']):.3f} |" for k, c in sel["candidates"].items()],
             "", f"Chosen **{sel['chosen']}**{rule}; {calibration}. Held out one source at a time:", "",
             "| held-out source | role | n | recall | FPR | AUROC | AUROC vs twins (its family's look-alikes) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    rows = sel["candidates"][sel["chosen"]]["by_source"]
    for name, r in sorted(rows.items(), key=lambda kv: (kv[1]["role"], kv[1].get("recall", kv[1].get("fpr", 0)))):
        lines.append(f"| {name} | {r['role']} | {r['n']} | {r.get('recall', '')} | {r.get('fpr', '')} | "
                     f"{r.get('auroc', '')} | {r.get('auroc_twins', '')} |")  # fmt: skip
    return [*lines, ""]


def _sae_section(sae: dict[str, Any] | None) -> list[str]:
    """The bundle's SAE: what it was fitted on and what it keeps of held-out tokens."""
    if not sae:
        return ["## SAE", "", "None (`[sae] enabled = false`): this bundle cannot explain its scores by features.", ""]
    r, q = sae["recipe"], sae["held_out"]
    return [
        "## SAE (what explanations are written in; read by no served head)",
        "",
        f"`{sae['name']}` on layer {sae['layer']}: TopK, {r['d_sae']} features, k = {r['k']}, fitted with SAELens on "
        f"{sae['fit_tokens']:,} tokens of {sae['texts']:,} train-part texts ({r['steps']} steps of "
        f"{r['batch_tokens']} tokens, {sae['seconds']:.0f} s), on activations standardised per dimension (folded "
        "into the stored weights). Held out (whole texts it never saw, standardised space):",
        "",
        "| tokens | variance explained | L0 | dead features | dense features (> 10 % of tokens) |",
        "|---|---|---|---|---|",
        f"| {q['tokens']:,} | {q['fve']} | {q['l0']} | {q['dead_share']:.1%} | {q['dense_share']:.1%} |",
        "",
    ]


def _explain_section(explain: dict[str, Any] | None) -> list[str]:
    """Feature labels, influence layers and how faithful the explanations are on flagged dev texts."""
    if not explain:
        return []
    lab = explain["labels"]
    lines = [
        "## Explanations (measured on flagged dev texts, through the served graph)",
        "",
        f"Feature labels: {lab['live_features']:,} of {lab['d_sae']:,} features fired on {lab['tokens']:,} tokens of "
        f"{lab['texts']:,} train-part texts; {lab['contexts']:,} top contexts stored, {lab['contexts_with_text']:,} "
        f"with their (redacted) text, the rest cited by source and row (licence). Built in {explain['seconds']:.0f} s.",
        "",
        "| category | texts | residual max | SAE error share median (p90) | top-5 deletion drop | random-5 drop | "
        "ratio | sufficiency | refit rows | refit score gap | influence: top-k drop | random-k drop | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for category, d in explain["dev"].items():
        f, inf = d["faithfulness"], d.get("influence") or {}
        check = inf.get("check") or {}
        if not f.get("texts"):
            lines.append(f"| {category} | 0 | | | | | | | | | | | |")
            continue
        lines.append(f"| {category} | {f['texts']} | {f['residual_max']:.1e} | {f['error_share_median']:.1%} "
                     f"({f['error_share_p90']:.1%}) | {f['top5_drop_mean']:.3f} | {f['random5_drop_mean']:.3f} | "
                     f"{f['deletion_ratio']} | {f['sufficiency_median']} | {inf.get('rows', '')} | "
                     f"{inf.get('mean_abs_score_gap', '')} | {check.get('top_k_drop', '')} | "
                     f"{check.get('random_k_drop', '')} | {check.get('ratio', '')} |")  # fmt: skip
    return [*lines, "",
            "Residual: |parts - logit|. Error share: |SAE error| / (|features| + |offset| + |error|). Deletion: the "
            "cited features' decoder directions removed from the activations, the attention recomputed. Influence: "
            "the refitted logistic layer without the top-k cited rows vs without k random rows (k in metrics.json). "
            "Refit score gap: mean |p_refit - p_served|. Reproduce on any bundle with an SAE: `python -m "
            "probeguard.training.explain_stage --bundle DIR` (`probeguard train` runs it).",
            ""]  # fmt: skip


def _trace_section(trace: dict[str, Any] | None) -> list[str]:
    """The layer trace's depth curve: per category, each positive source's dev AUROC (against the pooled dev
    negatives) at every layer, and the worst source's."""
    if not trace:
        return []
    layers = trace["layers"]
    lines = ["## Layer trace (per-layer probes, dev AUROC against pooled dev negatives)", "",
             f"A mean-pooled linear probe per category at every layer ({trace['layer_numbering']}), fitted on the "
             f"category heads' training rows; the served heads read layer {trace['served_layer']}. Harvest "
             f"{trace['harvest_seconds']:.0f} s (one full-host pass), fit {trace['fit_seconds']:.0f} s; "
             f"{trace['tensor_bytes'] / 1024:.0f} KiB in the bundle. `python -m probeguard.training.layer_trace`.",
             ""]  # fmt: skip
    for category, r in trace["by_category"].items():
        if not r["dev_auroc_by_source"]:
            continue
        lines += [f"**{category}**", "", "| source | " + " | ".join(f"L{k}" for k in layers) + " |",
                  "|---|" + "---|" * len(layers)]  # fmt: skip
        rows = {**r["dev_auroc_by_source"], "**worst**": r["worst_dev_auroc"]}
        lines += [f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |" for name, values in rows.items()]
        lines.append("")
    return [*lines, "![dev AUROC by layer](trace_depth.png)", ""]


def write_report(out: Path, metrics: dict[str, Any]) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_dev_sources(metrics["dev"]["pii"], out / "dev_sources.png")
    plot_category_loso(metrics["category_selection"], out / "category_loso.png")
    if metrics.get("trace"):
        plot_trace_depth(metrics["trace"], out / "trace_depth.png")
    dev = render_markdown({"bundle": metrics["bundle"], "machine": metrics["machine"], "command": "probeguard train",
                           "pii": metrics["dev"]["pii"], "categories": metrics["dev"]["categories"]})  # fmt: skip
    lines = [
        f"# {metrics['bundle']} — evaluation report",
        "",
        f"Host `{metrics['host']}`; layers read {metrics['layers']} of {metrics['host_layers']} (the host runs "
        f"{max(metrics['layers'])} blocks). Trained in {metrics['train_seconds']:.0f} s with {metrics['threads']} "
        f"thread(s) on {metrics['machine']}. Peer: {metrics['peer']}.",
        "",
        f"Served on the **{metrics.get('variant', 'fp32')}** graph; every activation below was harvested from it"
        + _refit_sentence(metrics),
        "",
        *([f"Heads, thresholds, selection and dev suite below are **{metrics['derived_from']}**'s, unchanged (the same "
           f"answers); this version adds {'; '.join(metrics.get('derived_adds') or [EXPLAIN_ADDS])}.", ""]
          if metrics.get("derived_from") else []),
        "Every choice below was made leave-one-source-out (fit without a source, score on it, rank by the worst "
        "source); the dev suite at the end runs the saved bundle on dev parts that nothing was fitted, selected or "
        "thresholded on. No public evaluation benchmark was used anywhere.",
        "",
        "## PII head selection (held-out source entity F1, half-overlap; PII-free: structured spans per 1,000 texts)",
        "",
        *_pii_selection(metrics["pii_selection"]),
        "## Category head selection",
        "",
        *[x for c, s in metrics["category_selection"].items() for x in _category_selection(c, s)],
        "![held-out recall per source](category_loso.png)",
        "",
        *_sae_section(metrics.get("sae")),
        *_explain_section(metrics.get("explain")),
        *_trace_section(metrics.get("trace")),
        dev.replace("# Dev suite", "# Dev suite (saved bundle)", 1).replace("\n# ", "\n## ").replace("\n## ", "\n### "),
        "![dev F1 per source](dev_sources.png)",
        "",
    ]  # fmt: skip
    (out / "report.md").write_text("\n".join(lines))


def _refit_sentence(metrics: dict) -> str:
    """Which choices the config fixed (`[choices]`) instead of selecting them."""
    fixed = metrics.get("choices_fixed") or []
    if not fixed:
        return "."
    others = [p for p in CHOICE_PARTS if p not in fixed]
    tables = ("their selection tables show the fixed candidate alone" if metrics.get("evaluate_fixed", True)
              else "refit without leave-one-out tables (`evaluate_fixed = false`)")  # fmt: skip
    return (
        f"; the choices of {', '.join(fixed)} were fixed by the config's `[choices]` (selected by an earlier run on "
        f"fp32), not selected again: {tables}" + (f"; {', '.join(others)} selected again here." if others else ".")
    )
