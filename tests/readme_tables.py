"""The README's table of verdict outcomes, read back so the simulations that make it
can check it still says what they measure."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_ROW = re.compile(r"^\| (?P<suite>[^|]+?) \| (?P<name>[^|]+?) \| (?P<r>[\d.]+)% \| (?P<c>[\d.]+)% \| (?P<i>[\d.]+)% \|$")

# Percentage points a README figure may differ from this machine's simulation: the
# draws are seeded, but a borderline draw may fall the other way on another CPU.
TOLERANCE_PP = 0.5


def readme_outcomes() -> dict[tuple[str, str], tuple[float, float, float]]:
    """(suite, simulated result) -> (reproduced, contradicted, inconclusive) in percent."""
    rows = {}
    for line in README.read_text().splitlines():
        match = _ROW.match(line.strip())
        if match:
            rows[match["suite"], match["name"]] = (float(match["r"]), float(match["c"]), float(match["i"]))
    return rows


def stale_rows(measured: dict[tuple[str, str], dict]) -> list[str]:
    """The rows whose README figures are missing or differ from ``measured`` (rates
    keyed 'reproduced', 'contradicted', 'inconclusive') by more than the tolerance."""
    shown, stale = readme_outcomes(), []
    for key, rates in measured.items():
        now = tuple(100 * rates[k] for k in ("reproduced", "contradicted", "inconclusive"))
        said = shown.get(key)
        if said is None or any(abs(a - b) > TOLERANCE_PP for a, b in zip(now, said)):
            stale.append(f"{key}: README {said}, simulated {tuple(round(x, 1) for x in now)}")
    return stale


def row(suite: str, name: str, rates: dict) -> str:
    """One README row: reproduced (agree), contradicted (differ), inconclusive."""
    return (f"| {suite} | {name} | {100 * rates['reproduced']:.1f}% | {100 * rates['contradicted']:.1f}% | "
            f"{100 * rates['inconclusive']:.1f}% |")


def printed_and_stale(measured: dict[tuple[str, str], dict], capsys) -> list[str]:
    """Print ``measured`` as the README's rows (seen with ``-s``); return the stale ones
    (:func:`stale_rows`), after checking each row's three rates add up to one."""
    with capsys.disabled():
        print()
        for (suite, name), rates in measured.items():
            print(row(suite, name, rates))
    assert all(abs(sum(r.values()) - 1) < 1e-9 for r in measured.values())
    return stale_rows(measured)
