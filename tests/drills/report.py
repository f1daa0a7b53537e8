"""What each fault drill did and found: lost, duplicated and recovered items (lost and duplicated must be 0).

A drill calls `report(...)` once it has checked the outcome; `tests/conftest.py` prints every report in the
run's terminal summary and, when ENCORE_DRILL_REPORT names a file, writes them there as JSON."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DrillReport:
    drill: str  # short name, e.g. "kill -9 web during webhook intake"
    did: str  # what the drill did: "posted 400 webhooks, killed the web process 3 times mid-stream"
    items: int  # how many items were at stake (webhooks, messages, redemptions...)
    lost: int
    duplicated: int
    recovered: int  # items the interruption left unfinished that completed on their own afterwards
    details: dict[str, int | float | str] = field(default_factory=dict)

    def line(self) -> str:
        extra = "".join(f", {k} {v}" for k, v in self.details.items())
        return (f"{self.drill}: {self.did} -> {self.items} items, lost {self.lost}, duplicated {self.duplicated}, "
                f"recovered {self.recovered}{extra}")


REPORTS: list[DrillReport] = []


def report(drill: str, did: str, *, items: int, lost: int, duplicated: int, recovered: int,
           **details: int | float | str) -> DrillReport:
    """Record a drill's outcome (call it before asserting, so a failing drill still shows its counts)."""
    entry = DrillReport(drill, did, items, lost, duplicated, recovered, details)
    REPORTS.append(entry)
    print(entry.line(), flush=True)
    return entry


def write_json() -> None:
    target = os.environ.get("ENCORE_DRILL_REPORT")
    if target and REPORTS:
        Path(target).write_text(json.dumps([asdict(r) for r in REPORTS], indent=2) + "\n")
