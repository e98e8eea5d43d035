"""The baseline: the smallest sensible FastAPI + uvicorn server for one scikit-learn model.

One process, uvloop and httptools (as modelfleet's server), no access log, no auth.
POST /score with {"data": rows} answers the model's predictions as a JSON list.

    python bench/baselines/fastapi_app.py --model model.joblib --port 8001
"""

from __future__ import annotations

import argparse

import joblib
import numpy as np
import uvicorn
from fastapi import FastAPI, Request


def build(model_path: str) -> FastAPI:
    model = joblib.load(model_path)
    app = FastAPI()

    @app.post("/score")
    async def score(request: Request) -> list:
        doc = await request.json()
        return model.predict(np.asarray(doc["data"], dtype=float)).tolist()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    uvicorn.run(build(args.model), host=args.host, port=args.port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
