"""fleet top: live traffic per endpoint and deployment in the terminal."""

from __future__ import annotations

import time

import click

from .common import Ctx, command

_holder = click.Group("top-holder")


def _ms(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def replicas_text(n: dict) -> str:
    """A deployment's replicas as /api/stats counts them: ready of wanted, then the busy ones
    (among the ready), starting, draining and failed, where there are any."""
    extra = [f"{v} {k}" for k, v in n.items() if v and k not in ("ready", "wanted")]
    return ", ".join([f"{n['ready']} ready of {n['wanted']}", *extra])


def table(stats: dict):
    from rich.table import Table
    t = Table(title=f"modelfleet · last {60} s · {time.strftime('%H:%M:%S')}", header_style="bold",
              title_justify="left")
    for col in ("endpoint", "deployment", "replicas", "req/s", "p50 ms", "p99 ms", "errors", "in flight", "queued"):
        t.add_column(col, justify="left" if col in ("endpoint", "deployment", "replicas") else "right")
    for ep in stats["endpoints"]:
        live = ep["live"]
        t.add_row(f"[bold]{ep['name']}[/bold]", "", "", f"{live['requests_per_second']:.2f}", _ms(live["p50_ms"]),
                  _ms(live["p99_ms"]), str(live["errors"]), str(ep["inflight"]), str(ep["queued"]))
        for dep in ep["deployments"]:
            d = dep["live"]
            t.add_row("", dep["name"] + (" (updating)" if dep["updating"] else ""), replicas_text(dep["replicas"]),
                      f"{d['requests_per_second']:.2f}", _ms(d["p50_ms"]), _ms(d["p99_ms"]), str(d["errors"]),
                      str(dep["inflight"]), str(dep["queued"]))
    if not stats["endpoints"]:
        t.add_row("(no endpoints)", "", "", "", "", "", "", "", "")
    return t


@command(_holder, "top", help="Live req/s, latency and errors per endpoint and deployment (Ctrl-C quits).")
@click.option("--interval", type=click.FloatRange(0.2, 60), default=2.0, show_default=True,
              help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print the table once and exit.")
def top(ctx: Ctx, interval, once):
    from rich.console import Console
    from rich.live import Live
    fleet = ctx.fleet
    if once or ctx.output != "table":
        stats = fleet.server.stats()
        ctx.emit(stats) if ctx.output != "table" else Console().print(table(stats))
        return
    with Live(table(fleet.server.stats()), auto_refresh=False, screen=False) as live:
        while True:
            time.sleep(interval)
            live.update(table(fleet.server.stats()), refresh=True)
