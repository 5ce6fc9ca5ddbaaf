"""Peak memory and load time of one subject, measured in a fresh process.

Peak RSS never goes down within a process, so measuring several rankers in one process would credit
each with the largest before it. Each subject is rebuilt from its spec in a child Python that loads
it and ranks one candidate list twice; the child's peak RSS (imports included: that is what a kiosk
pays) comes back as one JSON line on stdout.

Standard library only at import time: the optimum peer, in its own environment, reads its peak
RSS with ``peak_rss_bytes`` from here.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .subjects import Subject

_MB = 1024 * 1024


def probe(subject: Subject, query: str, products: list[dict[str, str]], timeout: float = 900) -> dict[str, Any]:
    """Load time and RSS of ``subject`` in a child process, or ``{"error": ...}`` saying why not."""
    request = json.dumps({"spec": subject.spec(), "query": query, "products": products})
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the child imports this very edgerank
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "edgerank.bench.memory"],
            input=request,
            text=True,
            capture_output=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"memory probe timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return {"error": f"memory probe failed: {lines[-1] if lines else f'exit {proc.returncode}'}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_rss_bytes() -> int:
    """This process's peak resident set size.

    On Linux this is ``VmHWM`` of /proc/self/status, not ``getrusage``'s ``ru_maxrss``: the latter
    survives exec, so a child started from a large parent (the bench after loading torch) would
    report the parent's peak instead of its own.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return int(psutil.Process().memory_info().peak_wset)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB elsewhere


def current_rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _child() -> None:
    from .subjects import from_spec, timed_load

    request = json.loads(sys.stdin.read())
    subject = from_spec(request["spec"])
    for module in subject.requires:
        importlib.import_module(module)
    before = current_rss_bytes()
    load_ms = timed_load(subject)
    loaded = current_rss_bytes()
    call = subject.prepare(request["query"], request["products"])
    call()
    call()
    print(
        json.dumps(
            {
                "load_ms": load_ms,
                "rss_before_load_mb": before / _MB,
                "rss_after_load_mb": loaded / _MB,
                "peak_rss_mb": peak_rss_bytes() / _MB,
                "probe_candidates": len(request["products"]),
            }
        )
    )


if __name__ == "__main__":
    _child()
