"""The pass cost model fitted from timed rows (detector.calibrate): recovery, degenerate timings, the detector hook."""

from __future__ import annotations

import pytest

from probeguard.detector import Detector
from probeguard.detector.batching import PassCost
from probeguard.detector.calibrate import calibration_lengths, fit_pass_cost, time_rows
from probeguard.detector.tokenize import TokenBatch

BASE = PassCost(pads=True, call_overhead_tokens=20, max_batch=None, attention_tokens=730)
LENGTHS = (16, 128, 320, 512)


def _timings(a: float, b: float, c: float) -> list[tuple[int, float]]:
    return [(n, a * n + b * n * n + c) for n in LENGTHS]


@pytest.mark.parametrize(
    ("a", "b", "c", "overhead", "attention"),
    [
        (1e-3, 1e-3 / 1500, 8e-3, 8, 1500),  # the AVX2 int8 shape
        (1.15e-3, 1.15e-3 / 2154, 13e-3, 11, 2154),  # the AVX2 fp32 shape
        (2e-5, 0.0, 5e-3, 250, None),  # a GPU-like shape: linear rows, a launch worth 250 tokens
        (1e-3, 1e-3 / 700, 0.0, 0, 700),  # no per-call cost
    ],
)
def test_fit_recovers_the_cost_model_that_made_the_timings(a, b, c, overhead, attention):
    fit = fit_pass_cost(_timings(a, b, c), BASE)
    assert fit.fitted
    assert fit.cost.call_overhead_tokens == overhead
    assert fit.cost.attention_tokens == attention
    assert fit.seconds_per_token == pytest.approx(a, rel=1e-6)
    assert (fit.cost.pads, fit.cost.max_batch) == (BASE.pads, BASE.max_batch)
    # planned work over the rate reproduces every timing: the wait estimate's units are seconds again
    for n, seconds in fit.timings:
        assert fit.cost.of([n]) * fit.seconds_per_token == pytest.approx(seconds, rel=0.02)
    assert fit.work * fit.seconds_per_token == pytest.approx(fit.seconds, rel=0.02)


def test_negative_curvature_from_noise_is_fitted_as_linear_rows():
    timings = [(16, 0.0256), (128, 0.1488), (320, 0.368), (512, 0.571)]  # a bump: least squares wants b < 0
    fit = fit_pass_cost(timings, BASE)
    assert fit.fitted and fit.cost.attention_tokens is None and fit.cost.call_overhead_tokens >= 0


def test_timings_that_are_all_overhead_keep_the_base_model_and_still_measure_the_rate():
    timings = [(n, 0.005) for n in LENGTHS]  # a tiny host: every row costs the call
    fit = fit_pass_cost(timings, BASE)
    assert not fit.fitted and fit.cost == BASE
    assert fit.seconds_per_token == pytest.approx(0.02 / sum(BASE.of([n]) for n in LENGTHS))


def test_time_rows_interleaves_lengths_and_keeps_the_fastest():
    calls: list[int] = []
    slow = iter([True, False, False, True])

    def run_row(n: int) -> None:
        calls.append(n)
        if next(slow):
            for _ in range(200_000):
                pass

    timings = dict(time_rows(run_row, (16, 512), repeats=2))
    assert calls == [16, 512, 16, 512]
    assert timings[16] < 0.002 and timings[512] < 0.002  # the slow first 16 and last 512 were not kept
    with pytest.raises(ValueError):
        time_rows(run_row, (16,), repeats=0)


def test_calibration_lengths_span_short_rows_to_a_full_window():
    assert calibration_lengths(512) == (16, 128, 320, 512)
    assert calibration_lengths(64) == (8, 16, 40, 64)


class _RecordingBackend:
    def __init__(self, inner) -> None:
        self.inner, self.name, self.pass_cost, self.rows = inner, inner.name, inner.pass_cost, []

    def forward(self, batch: TokenBatch):
        self.rows.append(batch.input_ids.shape)
        return self.inner.forward(batch)


def test_detector_times_full_rows_and_plans_with_the_fit(tiny_hosts, tmp_path):
    from probeguard.detector.settings import DetectorSettings
    from tests.bundles import make_bundle

    host = tiny_hosts("gemma3_text")
    make_bundle(tmp_path / "bundle", host)
    settings = DetectorSettings(cache_dir=tmp_path / "cache", host_path=host, backend="torch", window_tokens=128,
                                window_overlap=16)  # fmt: skip
    loaded = Detector.load(tmp_path / "bundle", settings)
    backend = _RecordingBackend(loaded.backend)
    det = Detector(loaded.bundle, backend, loaded.tokenizer, loaded.host, settings)
    fit = det.calibrate_pass_cost(repeats=2)
    lengths = calibration_lengths(128)
    assert backend.rows == [(1, n) for n in lengths] * 2  # one row per pass, special tokens included
    assert [n for n, _ in fit.timings] == list(lengths) and all(t > 0 for _, t in fit.timings)
    assert det.pass_cost == fit.cost and backend.pass_cost == loaded.backend.pass_cost  # the backend is not mutated
    assert fit.seconds_per_token > 0
    assert det.info()["pass_cost"]["call_overhead_tokens"] == fit.cost.call_overhead_tokens


def test_timings_no_model_describes_keep_the_base_model():
    fit = fit_pass_cost([(16, 0.020), (128, 0.300), (320, 0.100), (512, 0.600)], BASE)  # a stall at 128 tokens
    assert not fit.fitted and fit.cost == BASE
