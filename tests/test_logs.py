"""The JSON log: server facts formatted, everyone else's arguments (which may hold user text) never written."""

from __future__ import annotations

import json
import logging

from probeguard.service.logs import JsonFormatter


def _format(name: str, msg: str, *args: object, **extra: object) -> dict:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return json.loads(JsonFormatter().format(record))


def test_uvicorn_startup_line_shows_the_bound_address():
    entry = _format("uvicorn.error", "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", "http", "127.0.0.1", 8001)
    assert entry["msg"] == "Uvicorn running on http://127.0.0.1:8001 (Press CTRL+C to quit)"
    assert entry["logger"] == "uvicorn.error" and entry["level"] == "info"


def test_other_loggers_keep_the_template_and_only_whitelisted_fields():
    entry = _format("probeguard.service", "request failed for %s", "Anna Schmidt", text="Anna Schmidt", route="/x")
    assert entry["msg"] == "request failed for %s" and entry["route"] == "/x"
    assert "Anna" not in json.dumps(entry)
