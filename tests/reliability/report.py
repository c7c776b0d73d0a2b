"""Write bench/results/reliability.md from the figures of a `make reliability` run."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def _cell(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _junit(path: Path) -> str | None:
    if not path.exists():
        return None
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return None
    tests, failures, errors = (int(suite.get(k, "0")) for k in ("tests", "failures", "errors"))
    return f"{tests - failures - errors}/{tests} passed in {float(suite.get('time', '0')):.0f} s"


def main() -> int:
    figures = [json.loads(line) for line in (RESULTS / "reliability.jsonl").read_text().splitlines() if line]
    lines = [
        "# Reliability suite",
        "",
        "`make reliability` (full sizes, the real stack as processes; Redis and PostgreSQL restarts on",
        "private servers). Machine: 2 cores shared by the server, workers, PostgreSQL, Redis and the tests.",
        "",
        "| check | measured | pass criterion | result |",
        "|---|---|---|---|",
    ]
    for f in figures:
        verdict = "pass" if f["passed"] else "FAIL"
        lines.append(f"| {f['check']} | {_cell(f['measured'])} | {f['criterion']} | {verdict} |")
    races = _junit(RESULTS / "races-junit.xml")
    if races:
        lines.append(
            f"| concurrency invariants (every tests/*/test_races.py on PostgreSQL) | {races} | all pass | "
            f"{'pass' if races.split('/')[0] == races.split('/')[1].split()[0] else 'FAIL'} |"
        )
    lines.append("")
    for f in figures:
        extra = {k: v for k, v in f.items() if k not in ("check", "measured", "criterion", "passed", "at")}
        if extra:
            lines.append(f"- {f['check']}: `{json.dumps(extra, ensure_ascii=False)}`")
    (RESULTS / "reliability.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print((RESULTS / "reliability.md").read_text())
    return 0 if all(f["passed"] for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
