"""Stage `train`, a `call:` stage: conveyor imports this module and calls `train(**kwargs)`.

The keyword arguments come from conveyor.yaml (`kwargs:`, templated from params.yaml), so the
function needs no argument parsing. Writes the fitted model to models/model.pkl.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier


def load(path: str) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    return table[:, :-1], table[:, -1].astype(int)


def train(n_estimators: int, max_depth: int, seed: int, data: str = "data/train_test/train.csv") -> None:
    features, labels = load(data)
    model = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed, n_jobs=1)
    model.fit(features, labels)
    out = Path("models/model.pkl")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pickle.dumps(model, protocol=5))
    print(f"trained a random forest: {n_estimators} trees, max depth {max_depth}, on {len(labels)} wines")
