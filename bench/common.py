"""What the benchmarks share: machine facts, child processes, HTTP load, memory, tables.

Every server a benchmark starts is a `Service`, stopped by its pid (and the pids of the
processes it spawned) when the benchmark ends, even on error. All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from modelfleet.ports import free_ports

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
VENVS = BENCH / ".venvs"
PYTHON = sys.executable
HOST = "127.0.0.1"

# Some machines set these for old OpenBLAS builds; on a current numpy they force a slower
# kernel. Benchmark child processes run without them (see machine()["blas_overrides"]).
BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


# -- environment and machine ----------------------------------------------------------------

def clean_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDES}
    env.update(extra or {})
    return env


def scrub_blas_overrides() -> dict:
    """Drop the OpenBLAS overrides from this process, so servers it starts inherit none."""
    return {k: os.environ.pop(k) for k in BLAS_OVERRIDES if k in os.environ}


def _blas() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
        import numpy  # noqa: F401  (loads the BLAS library threadpoolctl reports on)
        return [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                for i in threadpool_info()]
    except ImportError:
        return []


def _git(*args: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
        return r.stdout.strip()
    return ""


def machine(removed_overrides: dict | None = None) -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk = shutil.which("wrk")
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "src_modified": bool(_git("status", "--porcelain", "--", "src")),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "blas": _blas(),
        "blas_overrides_removed": removed_overrides or {},
        "load_generator": (subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
                           if wrk else "built-in asyncio keep-alive client"),
    }


# -- child processes --------------------------------------------------------------------------

def free_port() -> int:
    return free_ports(1, HOST)[0]


def tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p] + p.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def stop_pids(pids: list[int], grace_s: float = 10.0) -> None:
    """SIGTERM each pid, wait, then SIGKILL whatever is left; never by name."""
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def stop_fleet(fleet) -> None:
    """Stop a `Fleet`'s server and everything it started (by pid), then close the Fleet."""
    pids: list[int] = []
    with contextlib.suppress(Exception):
        pids = [p.pid for p in tree(fleet.server.status()["pid"])]
    with contextlib.suppress(Exception):
        fleet.server.stop()
    stop_pids(pids, 5.0)   # replicas die with the server; this only makes sure
    fleet.close()


class Service:
    """A server started as a child process; `stop()` ends it and everything it spawned."""

    def __init__(self, name: str, cmd: list[str], log_dir: Path, env: dict | None = None,
                 cwd: Path | None = None):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env or clean_env(), cwd=cwd, start_new_session=True)
        self._seen: set[int] = {self.proc.pid}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        found = [p.pid for p in tree(self.pid)]
        self._seen.update(found)
        return found

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        return ""

    def wait_ready(self, url: str, timeout: float, body: bytes | None = None,
                   headers: dict | None = None) -> None:
        """Poll until `url` answers 200 (POST when a body is given); raise with the log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited at start: {self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                r = (httpx.post(url, content=body, headers=headers, timeout=5) if body is not None
                     else httpx.get(url, timeout=5))
                if r.status_code == 200:
                    self.pids()
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s: {self.tail()}")

    def stop(self, grace_s: float = 10.0) -> None:
        self.pids()
        stop_pids([self.pid], grace_s)                       # the parent shuts its children down first
        stop_pids([p for p in self._seen if p != self.pid], 3.0)
        self._log.close()


def listening_off_loopback(pids: list[int]) -> list[str]:
    """Each "ip:port" one of `pids` listens on that is not a loopback address (there should be none)."""
    import ipaddress
    out = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            for conn in psutil.Process(pid).net_connections(kind="inet"):
                if conn.status != psutil.CONN_LISTEN:
                    continue
                ip = ipaddress.ip_address(conn.laddr.ip.split("%")[0])
                if not (getattr(ip, "ipv4_mapped", None) or ip).is_loopback:
                    out.add(f"{conn.laddr.ip}:{conn.laddr.port}")
    return sorted(out)


def run_python(python: str, code: str, timeout: float = 300, env: dict | None = None) -> str:
    r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=timeout,
                       env=env or clean_env())
    if r.returncode != 0:
        raise RuntimeError((r.stderr or r.stdout).strip().splitlines()[-1] if (r.stderr or r.stdout) else "failed")
    return r.stdout


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str, packages: list[str], timeout: float) -> tuple[Path | None, str]:
    """A virtualenv under bench/.venvs with `packages`; (python, "") or (None, why not)."""
    py = venv_python(name)
    marker = VENVS / name / ".bench-installed"
    want = " ".join(packages)
    if py.exists() and marker.exists() and marker.read_text() == want:
        return py, ""
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENVS / name)], check=True, capture_output=True,
                           timeout=120)
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"pip install {want} took longer than {timeout:.0f}s"
    except subprocess.CalledProcessError as e:
        return None, f"python -m venv failed: {e.stderr.decode(errors='replace').strip()[-300:]}"
    if r.returncode != 0:
        lines = [l for l in (r.stderr or r.stdout).strip().splitlines() if "WARNING" not in l]
        return None, f"pip install {want} failed: {' '.join(lines[-2:])[-300:]}"
    marker.write_text(want)
    return py, ""


def cpu_seconds(pids: list[int], system_only: bool = False) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            ct = psutil.Process(pid).cpu_times()
            total += ct.system if system_only else ct.user + ct.system
    return total


class CpuWatch:
    """CPU used during a run by processes other than `pids`, the load generator and this one
    (another job on a shared machine), plus time stolen by the hypervisor."""

    def __init__(self, pids: list[int], groups: dict[str, list[int]] | None = None):
        self.pids = pids
        self.groups = groups or {}
        self.start = self._sample()
        self.group_start = {k: cpu_seconds(v) for k, v in self.groups.items()}
        self.group_sys_start = {k: cpu_seconds(v, True) for k, v in self.groups.items()}

    def _sample(self) -> tuple[float, float]:
        import resource
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)
        ours = cpu_seconds(self.pids)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):   # this process; wrk once waited
            ru = resource.getrusage(who)
            ours += ru.ru_utime + ru.ru_stime
        return busy, ours

    def per_request_us(self, requests: int) -> dict:
        """CPU microseconds per request spent in each group of processes (e.g. gateway, replicas),
        and as `<group>_sys` the part of it spent in the kernel (sockets, wake-ups)."""
        n = max(1, requests)
        out = {}
        for k, v in self.groups.items():
            out[k] = round(1e6 * (cpu_seconds(v) - self.group_start[k]) / n, 1)
            out[f"{k}_sys"] = round(1e6 * (cpu_seconds(v, True) - self.group_sys_start[k]) / n, 1)
        return out

    def foreign_pct(self, seconds: float) -> float:
        busy, ours = self._sample()
        foreign = (busy - self.start[0]) - (ours - self.start[1])
        return round(max(0.0, 100 * foreign / (seconds * len(os.sched_getaffinity(0)))), 1)


# -- models -----------------------------------------------------------------------------------

def train_iris(out_dir: Path, C: float | None = None) -> Path:
    """The quickstart's iris pipeline (StandardScaler + LogisticRegression) in out_dir/model.joblib.
    A different `C` gives a second version with other weights but the same cost per row."""
    from modelfleet.cli.quickstart import train
    train("iris", out_dir)
    if C is not None:
        import joblib
        model = joblib.load(out_dir / "model.joblib")
        model.set_params(logisticregression__C=C)
        from sklearn import datasets
        model.fit(*datasets.load_iris(return_X_y=True))
        joblib.dump(model, out_dir / "model.joblib")
    return out_dir / "model.joblib"


def train_forest(out_dir: Path, trees: int = 100) -> Path:
    """A `trees`-tree random forest on iris in out_dir/model.joblib: the same one-row body as the
    pipeline, and a model scikit-learn walks tree by tree (milliseconds per one-row call)."""
    import joblib
    from sklearn import datasets
    from sklearn.ensemble import RandomForestClassifier
    out_dir.mkdir(parents=True, exist_ok=True)
    model = RandomForestClassifier(n_estimators=trees, random_state=0).fit(*datasets.load_iris(return_X_y=True))
    joblib.dump(model, out_dir / "model.joblib")
    return out_dir / "model.joblib"


# -- HTTP load --------------------------------------------------------------------------------

_WRK_DONE = r'''
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
'''


def _lua_str(s: str) -> str:
    return "[==[" + s + "]==]"   # a long string: no escaping; write `t[ [==[k]==] ]` to index with one


def wrk_script(targets: list[tuple[str, bytes, dict]]) -> str:
    """A wrk Lua script POSTing to one or more (path, body, headers) targets, round robin."""
    if len(targets) == 1:
        path, body, headers = targets[0]
        lines = ['wrk.method = "POST"', f"wrk.path = {_lua_str(path)}", f"wrk.body = {_lua_str(body.decode())}"]
        lines += [f"wrk.headers[ {_lua_str(k)} ] = {_lua_str(v)}" for k, v in headers.items()]
        return "\n".join(lines) + "\n" + _WRK_DONE
    reqs = []
    for path, body, headers in targets:
        hdrs = ", ".join(f"[ {_lua_str(k)} ] = {_lua_str(v)}" for k, v in headers.items())
        reqs.append(f'wrk.format("POST", {_lua_str(path)}, {{{hdrs}}}, {_lua_str(body.decode())})')
    # one cursor per wrk thread, shared by its connections: requests cycle evenly over the targets
    return ("local reqs = {}\nlocal i = 0\n"
            "init = function(args)\n  reqs = {" + ", ".join(reqs) + "}\n  i = math.random(#reqs)\nend\n"
            "request = function()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n" + _WRK_DONE)


def _summary(requests: int, seconds: float, lat_ms: dict, errors: dict, generator: str) -> dict:
    total_err = sum(errors.values())
    return {"requests": requests, "seconds": round(seconds, 2),
            "rps": round(requests / seconds, 1) if seconds else 0.0,
            **{k: round(v, 3) for k, v in lat_ms.items()},
            "errors": total_err, "error_kinds": {k: v for k, v in errors.items() if v},
            "generator": generator}


def run_wrk(base_url: str, targets: list[tuple[str, bytes, dict]], connections: int, duration: float,
            threads: int = 1, timeout_s: float = 5.0) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(wrk_script(targets))
        script = f.name
    try:
        # wrk takes whole seconds
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
               f"--timeout={max(1, round(timeout_s))}s",
               "-s", script, base_url + targets[0][0]]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, env=clean_env()).stdout
    finally:
        os.unlink(script)
    m = re.search(r"WRK_JSON (\{.*\})", out)
    if not m:
        raise RuntimeError(f"wrk printed no summary: {out[-400:]}")
    d = json.loads(m.group(1))
    # wrk counts a non-2xx answer in `requests` too; errors.status says how many there were
    errors = {k: d[k] for k in ("connect", "read", "write", "status", "timeout")}
    lat = {"p50_ms": d["p50"] / 1000, "p90_ms": d["p90"] / 1000, "p99_ms": d["p99"] / 1000,
           "max_ms": d["max"] / 1000, "mean_ms": d["mean"] / 1000}
    return _summary(d["requests"] - d["status"], d["duration_us"] / 1e6, lat, errors, "wrk")


class Recorder:
    """A closed-loop keep-alive HTTP/1.1 client that keeps every request's (start, latency, status).

    Used where per-request timing matters (a rolling update) and as the load generator when wrk
    is not installed. Status 0 means the connection failed or closed before an answer."""

    def __init__(self, base_url: str, targets: list[tuple[str, bytes, dict]]):
        m = re.match(r"http://([^:/]+):(\d+)", base_url)
        self.host, self.port = m.group(1), int(m.group(2))
        self.requests = [self._raw(path, body, headers) for path, body, headers in targets]
        self.records: list[tuple[float, float, int]] = []
        self.start_clock = time.perf_counter()
        self.stop_clock = float("inf")

    def _raw(self, path: str, body: bytes, headers: dict) -> bytes:
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return head.encode() + b"\r\n" + body

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
        """The status, and whether the server closes the connection after it (`connection: close`,
        as nginx says after `keepalive_requests`): the next request then goes on a new one."""
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        closing = re.search(rb"\r\nconnection:\s*close", lower) is not None
        m = re.search(rb"content-length:\s*(\d+)", lower)
        if m:
            await reader.readexactly(int(m.group(1)))
        elif b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        return status, closing

    async def _connection(self, k: int) -> None:
        clock, t0 = time.perf_counter, self.start_clock
        i = k
        while clock() < self.stop_clock:   # another thread may move stop_clock
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.records.append((clock() - t0, 0.0, 0))
                await asyncio.sleep(0.01)
                continue
            start = clock()
            try:
                while clock() < self.stop_clock:
                    i = (i + 1) % len(self.requests)
                    start = clock()
                    writer.write(self.requests[i])
                    status, closing = await asyncio.wait_for(self._read_response(reader), 10)
                    self.records.append((start - t0, clock() - start, status))
                    if closing:
                        break
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                self.records.append((start - t0, clock() - start, 0))
            finally:
                writer.close()

    async def _run(self, connections: int) -> None:
        await asyncio.gather(*(self._connection(k) for k in range(connections)))

    def run(self, connections: int, duration: float) -> "Recorder":
        """Load for `duration` seconds, or until another thread sets `stop_clock` (perf_counter)."""
        try:
            from uvloop import new_event_loop
        except ImportError:
            new_event_loop = None
        self.start_clock = time.perf_counter()
        self.stop_clock = self.start_clock + duration
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(self._run(connections))
        return self

    def stats(self, start: float = 0.0, end: float = float("inf")) -> dict:
        """Summary of the requests started in [start, end) seconds after the run began."""
        recs = [r for r in self.records if start <= r[0] < end]
        ok = sorted(lat for _, lat, st in recs if 200 <= st < 300)
        errors = {"status": sum(1 for _, _, st in recs if st >= 300), "connect": sum(1 for _, _, st in recs if st == 0)}
        span = (min(end, max((r[0] for r in recs), default=0)) - start) if recs else 0
        return _summary(len(ok), span, latency_summary(ok), errors, "built-in")


def latency_summary(sorted_s: list[float]) -> dict:
    if not sorted_s:
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "mean_ms": 0.0}
    def pct(q):
        return sorted_s[min(len(sorted_s) - 1, int(q * len(sorted_s)))] * 1000
    return {"p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99), "max_ms": sorted_s[-1] * 1000,
            "mean_ms": statistics.fmean(sorted_s) * 1000}


def wait_quiet(max_wait_s: float = 20.0, busy_pct: float = 20.0) -> float:
    """Wait (bounded) until the machine is idle; returns the CPU busy % last seen."""
    deadline = time.monotonic() + max_wait_s
    busy = psutil.cpu_percent(interval=0.5)
    while busy > busy_pct and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=0.5)
    return busy


FOREIGN_MAX_PCT = 10.0   # a run disturbed by more than this share of the machine is repeated


def measure(base: str, targets: list[tuple[str, bytes, dict]], connections: int, duration: float,
            warmup: float, pids: list[int], groups: dict[str, list[int]] | None = None, attempts: int = 3,
            quiet_wait_s: float = 20.0) -> dict:
    """Warm up, then one measured run; repeated (up to `attempts` in all) when other work took CPU
    meanwhile. `pids` are the measured servers' processes (their CPU is not "other work"); `groups`
    names subsets of them whose CPU time per request is reported."""
    best = None
    for _attempt in range(attempts):
        wait_quiet(quiet_wait_s)
        load(base, targets, connections, warmup)
        watch = CpuWatch(pids, groups)
        result = load(base, targets, connections, duration)
        answered = result["requests"] + result["error_kinds"].get("status", 0)
        result.update(connections=connections, foreign_cpu_pct=watch.foreign_pct(result["seconds"]),
                      cpu_us_per_request=watch.per_request_us(answered))
        if best is None or result["foreign_cpu_pct"] < best["foreign_cpu_pct"]:
            best = result
        if result["foreign_cpu_pct"] <= FOREIGN_MAX_PCT:
            break
    print(f"    {connections:>3} conns: {best['rps']:>8,.0f} req/s  p50 {best['p50_ms']:.2f} ms  "
          f"p99 {best['p99_ms']:.2f} ms  errors {best['errors']}  (other work: {best['foreign_cpu_pct']}% CPU)",
          flush=True)
    return best


def load(base_url: str, targets: list[tuple[str, bytes, dict]], connections: int, duration: float) -> dict:
    """Closed-loop load with `connections` keep-alive connections for `duration` seconds."""
    if shutil.which("wrk"):
        return run_wrk(base_url, targets, connections, duration)
    return Recorder(base_url, targets).run(connections, duration).stats(0, duration)


# -- output -----------------------------------------------------------------------------------

def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A Markdown table: `columns` are (key, header) pairs."""
    out = ["| " + " | ".join(h for _, h in columns) + " |",
           "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(k)) for k, _ in columns) + " |")
    return "\n".join(out)


def write_result(name: str, data: dict, markdown: str | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    if markdown is not None:
        (RESULTS / f"{name}.md").write_text(markdown)
    return path


def publish(name: str, data: dict, markdown: str) -> Path:
    """Write the JSON and Markdown results, print the table and where it went."""
    path = write_result(name, data, markdown)
    print("\n" + markdown)
    print(f"wrote {path} and {name}.md")
    return path


def median_of(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")
