"""The one table every benchmark adds its headline figures to: a figure beside its in-run baseline."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    benchmark: str
    figure: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


def print_table(rows: list[Row]) -> None:
    print(f"{'benchmark':<10} {'figure':<44} {'value':>12} {'baseline':>12} {'ratio':>7}  baseline is")
    for row in rows:
        baseline = f"{row.baseline:>12,.1f}" if row.baseline is not None else f"{'':>12}"
        ratio = f"{row.ratio:>7.2f}" if row.ratio is not None else f"{'':>7}"
        print(f"{row.benchmark:<10} {row.figure:<44} {row.value:>12,.1f} {baseline} {ratio}  "
              f"{row.unit}{'; ' + row.baseline_label if row.baseline_label else ''}")
