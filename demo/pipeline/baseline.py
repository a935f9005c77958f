"""Stage `baseline@NAME` (a `foreach` stage): how well does a simple model do on the same split?

`python src/baseline.py majority` always predicts the most common cultivar; `logistic` is a
scaled logistic regression. Writes metrics/NAME.json, comparable with metrics/forest.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MODELS = {
    "majority": lambda: DummyClassifier(strategy="most_frequent"),
    "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
}


def load(path: str) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    return table[:, :-1], table[:, -1].astype(int)


def main(name: str) -> None:
    model = MODELS[name]().fit(*load("data/train_test/train.csv"))
    features, labels = load("data/train_test/test.csv")
    predicted = model.predict(features)
    metrics = {
        "accuracy": round(float(accuracy_score(labels, predicted)), 4),
        "f1_macro": round(float(f1_score(labels, predicted, average="macro", zero_division=0)), 4),
    }
    Path("metrics").mkdir(exist_ok=True)
    Path(f"metrics/{name}.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(f"{name} baseline: accuracy {metrics['accuracy']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
