"""What the micro-batcher holds per request: the job (texts, what their scored windows have added so far, how it is
answered), its steps on the schedule, the answer, and what one batch reports to the metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from probeguard.detector import Detection, Detector
from probeguard.detector.pipeline import TextScores
from probeguard.detector.tokenize import EncodedText, Window
from probeguard.service.admission import Step


@dataclass
class Job:
    """One request: its texts, what their scored windows have added so far, and how it is answered."""

    detector: Detector | None  # the one that tokenized these texts (a batch never mixes detectors: reload); None
    # for exclusive work
    texts: list[str]
    encoded: list[EncodedText]
    scores: list[TextScores]
    tokens: int  # unpadded, explained ones weighed by their kept activations: what the queue's memory bound counts
    future: asyncio.Future[Any]
    expires: float  # past its last due plus the queue timeout: answered 503 instead of run further
    steps_left: int = 0
    exclusive: Callable[[], Any] | None = None  # work that is not a detect batch (the console's layer trace)
    enqueued: float = field(default_factory=time.perf_counter)
    started: float | None = None


@dataclass(order=True)
class JobStep(Step):
    job: Job = field(compare=False)
    windows: list[Window] = field(default_factory=list, compare=False)  # `text_index` = position in job.encoded


@dataclass(frozen=True)
class Scored:
    detections: list[Detection]  # one per text
    bound_s: float  # the answer bound it was admitted with (service.admission), seconds after it arrived


@dataclass
class BatchStats:
    items: int
    tokens: int
    inference_s: float
    waits_s: list[float]  # of the requests whose first step ran in this batch
