"""Structured JSON logs. Only whitelisted fields are written: ids, sizes, timings, names; never request content."""

from __future__ import annotations

import json
import logging
import sys
import time

SAFE_FIELDS = frozenset({
    "request_id", "route", "status", "duration_ms", "bundle", "version", "error_type", "seconds", "drained",
    "count", "desc", "layers", "variant", "host", "port", "backend", "pass_cost",
})  # fmt: skip


# Loggers whose arguments are server facts (bind address, port, worker pid, signal), never request content: their
# messages are formatted ("Uvicorn running on http://127.0.0.1:8000"). Everyone else's stay templates.
FORMATTED_LOGGERS = ("uvicorn.error",)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if not isinstance(record.msg, str):
            msg = type(record.msg).__name__
        elif record.name in FORMATTED_LOGGERS and record.args:
            msg = record.getMessage()
        else:
            msg = record.msg
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": msg,
        }
        entry.update({k: v for k, v in record.__dict__.items() if k in SAFE_FIELDS})
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__  # the type only: messages and frames may hold user text
        return json.dumps(entry, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # third-party libraries: warnings and errors only
    for name in ("probeguard", "detector", "uvicorn.error"):
        logging.getLogger(name).setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # our middleware logs requests without paths' queries
