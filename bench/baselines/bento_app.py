"""BentoML serving the same scikit-learn model: POST /score with {"data": rows}.

The model file comes from $BENCH_MODEL. Run from this directory:

    BENCH_MODEL=model.joblib bentoml serve bento_app:Scorer --host 127.0.0.1 --port 8004
"""

from __future__ import annotations

import os

import bentoml
import joblib
import numpy as np


@bentoml.service(workers=1)
class Scorer:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL"])

    @bentoml.api
    def score(self, data: list[list[float]]) -> list:
        return self.model.predict(np.asarray(data, dtype=float)).tolist()
