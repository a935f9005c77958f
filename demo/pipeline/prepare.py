"""Stage `prepare`: clean the raw wine data and add engineered features.

Reads data/wine.csv (tracked with `conveyor add`), drops exact duplicate rows, gives the
columns short names and adds three features a wine chemist would suggest. Writes
data/prepared.csv. Only the standard library and numpy: this stage starts fast.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

RENAME = {"od280/od315_of_diluted_wines": "od280_od315"}


def main(source: str, target: str) -> None:
    with open(source, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [RENAME.get(name, name) for name in next(reader)]
        rows = list(dict.fromkeys(tuple(row) for row in reader))  # drop duplicates, keep order
    table = np.array(rows, dtype=float)
    column = {name: table[:, i] for i, name in enumerate(header)}
    features = [name for name in header if name != "cultivar"]
    extra = {
        "flavanoid_share": column["flavanoids"] / column["total_phenols"],
        "color_per_hue": column["color_intensity"] / column["hue"],
        "log_proline": np.log(column["proline"]),
    }
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([*features, *extra, "cultivar"])
        for i in range(len(table)):
            values = [column[name][i] for name in features] + [values[i] for values in extra.values()]
            writer.writerow([*(f"{v:.6g}" for v in values), int(column["cultivar"][i])])
    print(f"prepared {len(table)} wines, {len(features) + len(extra)} features -> {target}")


if __name__ == "__main__":
    main(*sys.argv[1:])
