"""Core timings of the detector on this machine, printed as one JSON object.

    python -m probeguard.loadtest.core_timings [--cold] [--threads 1] [--repeats 5]

- load: Detector.load of the default bundle (warm = converted host already cached; --cold converts into a fresh
  temporary cache first, which is what a fresh machine pays once);
- forward: truncated host (to the bundle's deepest layer) vs the full host, torch eager, batch 1, for 64- and
  512-token inputs (median of --repeats);
- resident memory right after the detector is loaded, and the peak RSS of the whole run (ru_maxrss, which includes
  the full host loaded for comparison and, with --cold, the conversion).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from probeguard.detector import Detector, DetectorSettings
from probeguard.detector.host import DEFAULT_HOST_ID, resolve_host
from probeguard.detector.paths import default_bundle_path
from probeguard.detector.truncate import load_full_host
from probeguard.loadtest.server import rss_mb


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="also time a first-use conversion in a temporary cache")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result: dict[str, object] = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), {platform.processor() or 'cpu'}",
        "torch": torch.__version__,
    }
    if args.cold:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            Detector.load(default_bundle_path(), DetectorSettings(cache_dir=Path(tmp), num_threads=args.threads))
            result["load_cold_s"] = round(time.perf_counter() - started, 1)
    settings = DetectorSettings.from_env(num_threads=args.threads)
    resolve_host(DEFAULT_HOST_ID, settings.cache_dir)  # make sure the cache is built before timing warm
    started = time.perf_counter()
    detector = Detector.load(default_bundle_path(), settings)
    result["load_warm_s"] = round(time.perf_counter() - started, 2)
    result["rss_after_detector_load_mb"] = rss_mb()
    truncated = detector.backend.model.host  # type: ignore[attr-defined]
    full = load_full_host(detector.host.path)
    result["layers"] = {"truncated_to": truncated.depth, "host_total": full.config.num_hidden_layers}
    for n in (64, 512):
        ids = torch.randint(1000, 20000, (1, n))
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            t_trunc = _median_ms(lambda ids=ids, mask=mask: truncated(ids, mask), args.repeats)
            t_full = _median_ms(lambda ids=ids, mask=mask: full(input_ids=ids, attention_mask=mask), args.repeats)
        result[f"forward_{n}_tokens_ms"] = {"truncated": t_trunc, "full": t_full, "speedup": round(t_full / t_trunc, 2)}
    text = "Hi, I'm Anna Schmidt. Please send the invoice to anna.schmidt@example-mail.de or call +49 30 1234567."
    result["detect_one_text_ms"] = _median_ms(lambda: detector.detect([text]), args.repeats)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
