"""Fault drills: real processes killed with SIGKILL, Redis and PostgreSQL restarted, the platform and the SMTP
server failing for a while. Each drill records what it did and what it found through `report`; the counts are
printed at the end of the run (and written as JSON to $ENCORE_DRILL_REPORT when it is set)."""
