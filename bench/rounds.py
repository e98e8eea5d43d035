"""Paired rounds: every system measured once per round, rounds one after the other, so that a
burst of other work on a shared machine lands on one round rather than on one system. A system's
figures are then those of its median round (per run: the run with the median req/s), and each
ratio is also given per round."""

from __future__ import annotations

RUN_KEYS = ("runs", "checked_runs", "batched_runs", "low_concurrency")


def _median_run(runs: list[dict]) -> dict:
    ranked = sorted(runs, key=lambda r: r["rps"])
    return ranked[len(ranked) // 2]


def median_system(rounds: list[dict]) -> dict:
    """One system's result across rounds: its first round's, with every load run replaced by the
    run of median req/s among the rounds (each keeps its own latencies and CPU figures)."""
    ok = [r for r in rounds if r.get("available")]
    if not ok:
        return rounds[0]
    out = dict(ok[0])
    for key in RUN_KEYS:
        if key in out:
            out[key] = {conns: _median_run([r[key][conns] for r in ok if conns in r.get(key, {})])
                        for conns in out[key]}
    out["rounds"] = len(ok)
    return out


def merge(rounds: list[dict]) -> dict:
    """{system: [its result in each round]} -> {system: its median result}."""
    return {name: median_system(results) for name, results in rounds_by_system(rounds).items()}


def rounds_by_system(rounds: list[dict]) -> dict:
    out: dict = {}
    for systems in rounds:
        for name, result in systems.items():
            out.setdefault(name, []).append(result)
    return out


def ratios(rounds: list[dict], key: str, conns: int, other: str = "fastapi") -> list[float]:
    """modelfleet's req/s over `other`'s, round by round (runs `key` at `conns` connections)."""
    out = []
    for systems in rounds:
        mf = systems.get("modelfleet", {}).get(key, {}).get(conns)
        base = systems.get(other, {}).get("runs", {}).get(conns)
        if mf and base and base["rps"]:
            out.append(round(mf["rps"] / base["rps"], 2))
    return out
