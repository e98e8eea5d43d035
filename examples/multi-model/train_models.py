"""Train the example's three models into ./models/<name> (run once before `fleet apply`).

    python examples/multi-model/train_models.py
    fleet apply -f examples/multi-model/fleet.yaml

Each is a small scikit-learn model fitted on a dataset bundled with scikit-learn, saved as
models/<name>/model.joblib, exactly as `fleet quickstart` trains them.
"""

from __future__ import annotations

from pathlib import Path

from modelfleet.quickstart import SUITE, train

HERE = Path(__file__).resolve().parent


def main() -> None:
    for name, _version, _description, _endpoint, dataset in SUITE:
        out = HERE / "models" / name
        sample = train(dataset, out)
        print(f"trained {name} on {dataset} -> {out.relative_to(HERE)}/model.joblib "
              f"(sample row: {[round(x, 2) for x in sample[0][:4]]} ...)")
    # model_b's retrained version, for update.sh
    train("wine", HERE / "models" / "model_b_v2", variant=2)
    print("trained model_b v2 -> models/model_b_v2/model.joblib")


if __name__ == "__main__":
    main()
