"""Stage `evaluate`: score models/model.pkl on the test split.

Writes metrics/forest.json (accuracy, macro F1, ...) and plots/per_class.csv (precision,
recall and F1 for each cultivar).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_recall_fscore_support


def main() -> None:
    table = np.loadtxt("data/train_test/test.csv", delimiter=",", skiprows=1)
    features, labels = table[:, :-1], table[:, -1].astype(int)
    model = pickle.loads(Path("models/model.pkl").read_bytes())
    predicted = model.predict(features)
    metrics = {
        "accuracy": round(float(accuracy_score(labels, predicted)), 4),
        "f1_macro": round(float(f1_score(labels, predicted, average="macro")), 4),
        "log_loss": round(float(log_loss(labels, model.predict_proba(features), labels=model.classes_)), 4),
        "test_wines": len(labels),
    }
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/forest.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    classes = model.classes_
    scores = precision_recall_fscore_support(labels, predicted, labels=classes, zero_division=0)
    Path("plots").mkdir(exist_ok=True)
    lines = ["cultivar,precision,recall,f1,support"]
    for c, p, r, f, s in zip(classes, *scores, strict=True):
        lines.append(f"{c},{p:.4f},{r:.4f},{f:.4f},{s}")
    Path("plots/per_class.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['f1_macro']:.4f} on {len(labels)} test wines")


if __name__ == "__main__":
    main()
