"""Stage `split`: a seeded, stratified train/test split of data/prepared.csv into data/train_test/.

It reads its settings from params.yaml itself; conveyor.yaml lists the keys it reads under
`params:`, so the stage re-runs when one of them changes, and only then.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml
from sklearn.model_selection import train_test_split


def main(source: str, target: str) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))["split"]
    lines = Path(source).read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    labels = [row.rsplit(",", 1)[1] for row in rows]
    train, test = train_test_split(
        np.array(rows), test_size=params["test_size"], random_state=params["seed"], stratify=labels
    )
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("test", test)):
        (out / f"{name}.csv").write_text("\n".join([header, *part]) + "\n", encoding="utf-8")
    print(f"split {len(rows)} wines: {len(train)} to train, {len(test)} to test")


if __name__ == "__main__":
    main(*sys.argv[1:])
