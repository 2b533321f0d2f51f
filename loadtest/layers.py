"""What each layer costs and buys: host speed truncated at K beside each head's held-out-source accuracy at K.

    python -m probeguard.loadtest.layers [--bundle B] [--threads 1]

Speed: the torch host truncated after K blocks, one batch of 8 x 256-token rows, best of 3 (tokens per second).
Accuracy: the bundle's own leave-one-source-out selection figures (`metrics.json`): for the PII head the worst
held-out source's entity F1, for category heads the worst held-out positive source's recall at the calibrated
threshold and the worst look-alike false-positive rate. These are the figures the layer was chosen by; a dev-suite
figure per K would need a head trained per K (not done here). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from probeguard.detector.host import DEFAULT_HOST_ID, resolve_host
from probeguard.detector.paths import default_bundle_path
from probeguard.detector.settings import DetectorSettings
from probeguard.detector.truncate import load_host_config, load_truncated_host


def host_speed(layer: int, threads: int) -> float:
    torch.set_num_threads(threads)
    host = resolve_host(DEFAULT_HOST_ID, DetectorSettings.from_env().cache_dir)
    model = load_truncated_host(host.path, [layer], load_host_config(host.path)).eval()
    ids = torch.randint(10, 1000, (8, 256))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        model(ids, mask)
        best = min((lambda t0: (model(ids, mask), time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(3))
    return ids.numel() / best


def accuracy_by_layer(metrics: dict) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for name, cand in metrics["pii_selection"]["candidates"].items():
        f1 = min(s["f1"] for s in cand["by_source"].values() if "f1" in s)
        out.setdefault(cand["layer"], {})[f"pii {name}"] = f"worst F1 {f1:.2f}"
    for category, sel in metrics["category_selection"].items():
        for name, cand in sel["candidates"].items():
            sources = cand["by_source"].values()
            recall = min(s["recall"] for s in sources if s.get("role") == "positive")
            lookalike = max((s["fpr"] for s in sources if s.get("role") == "lookalike"), default=float("nan"))
            out.setdefault(cand["layer"], {})[f"{category} {name}"] = (
                f"worst recall {recall:.2f}, worst look-alike FPR {lookalike:.2f}"
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    bundle = args.bundle or default_bundle_path()
    metrics = json.loads((bundle / "metrics.json").read_text())
    by_layer = accuracy_by_layer(metrics)
    print(f"bundle {bundle.name}; chosen layers {metrics['layers']}; {args.threads} thread(s)\n")
    print("| K | host tokens/s | head candidate at K | held-out-source figure |\n|---|---|---|---|")
    for layer in sorted(by_layer):
        speed = host_speed(layer, args.threads)
        for i, (head, figure) in enumerate(sorted(by_layer[layer].items())):
            print(f"| {layer if i == 0 else ''} | {f'{speed:.0f}' if i == 0 else ''} | {head} | {figure} |")


if __name__ == "__main__":
    main()
