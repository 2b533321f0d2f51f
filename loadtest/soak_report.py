"""The overload soaks' section of reports/BENCHMARKS.md, from the JSON `python -m probeguard.loadtest.soak --write`
saves (reports/soak_<X>x.json), so `make bench` keeps the last soaks beside its own figures."""

from __future__ import annotations

import json
from pathlib import Path

SIZES = ("short", "medium", "long", "document")


def soak_files(reports: Path) -> list[Path]:
    return sorted(reports.glob("soak_*x.json"), key=lambda p: float(p.stem.removeprefix("soak_").removesuffix("x")))


def soak_section(reports: Path) -> list[str]:
    """Markdown lines: one table row per size class and soak, then each soak's totals and checks ([] when none)."""
    files = soak_files(reports)
    if not files:
        return []
    intro = (
        "`python -m probeguard.loadtest.soak --times-capacity X --write`: open loop at X times the capacity measured "
        "for the mix (60 / 28 / 10 / 2 % short ~26 / medium ~137 / long ~523 / document ~20k tokens), refused "
        "requests sent again after their Retry-After (`retries` times). Admitted: first try (at all). p50 / p99 "
        "of accepted requests, client side; over bound: accepted but answered after the bound the service gave "
        "(`timing_ms.answer_bound` + 50 ms)."
    )
    lines = ["## Overload soak", "", intro, "", "| X | size | requests | admitted | p50 / p99 ms | over bound |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    totals = []
    for path in files:
        r = json.loads(path.read_text())
        load, x = r["load"], r["times_capacity"]
        for size in SIZES:
            if size not in load["requests_by_size"]:
                continue
            lines.append(
                f"| {x:g} | {size} | {load['requests_by_size'][size]} | {load['admitted_first_try_by_size'][size]:.2f} "
                f"({load['admitted_with_retries_by_size'][size]:.2f}) | {load['p50_ms_by_size'].get(size, '-')} / "
                f"{load['p99_ms_by_size'].get(size, '-')} | {load['over_bound_by_size'].get(size, 0)} |"
            )
        rss, cap = r["rss_mb"], r["capacity"]
        failed = [k for k, ok in r["checks"].items() if ok is False]
        retry = ", ".join(f"{k} s × {v}" for k, v in load["retry_after_s"].items())
        retries = load.get("retries", "unbounded")
        totals.append(
            f"- {x:g}x ({r['date']}, {r['machine']}): capacity {cap['throughput_rps']} requests/s, offered "
            f"{r['offered_rps']}/s for {load['wall_s']:.0f} s, retries {retries}; statuses {load['statuses']}, "
            f"unanswered {load['unanswered']}; refusals by reason {r['server']['refusals']}; Retry-After {retry}; RSS "
            f"{rss['before']:.0f} → max {rss['max']:.0f} → {rss['after_10s_idle']:.0f} MB 10 s after; load generator "
            f"{r['load_generator']['cores_used']:.3f} cores; first request after: {r['after']}; checks "
            f"{'all hold' if not failed else 'FAILED: ' + ', '.join(failed)}."
        )
    return [*lines, "", *totals, ""]
