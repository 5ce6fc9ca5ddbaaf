"""The CI regression gate: compare a run with a baseline run of the same workload.

Latency is compared as a ratio to the reference GEMM timed around the same subject (see
``reference``), never as raw milliseconds, so a slower CI machine does not fail the gate while a
slower ranker does. The gated ratio is the fastest call over the fastest reference GEMM: other
processes only ever add time, so the two minimums measure code and machine speed while medians also
measure the neighbours (on a shared 2-core box, p50 ratios of an unchanged rerun moved by -25% to
+80%). p50/p95/p99 are reported, not gated. Quality (nDCG@10 and MRR@10 on
the judged lists) is deterministic for a given artifact and data, so it gets a small absolute
tolerance rather than a percentage.

Even minimums move when a neighbour holds the other core for a whole run (an unchanged rerun in CI
once read +62%), so a latency regression is only reported if it survives re-timing: the command
re-times the regressed subjects (only those) up to ``--retries`` times and gates each subject's best
attempt (``best_of``). A real slowdown is there in every attempt; a neighbour's burst rarely is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import BenchError

#: Workload fields that must be equal for two runs to be compared at all.
SAME_WORKLOAD = ("data_sha256", "queries", "quality_queries", "seed", "max_length", "threads")
QUALITY = ("ndcg@10", "mrr@10")


def parse_fraction(text: str | float) -> float:
    """``15%``, ``0.15`` and ``15`` all mean 0.15 (a bare number above 1 is read as percent)."""
    raw = str(text).strip()
    try:
        value = float(raw.rstrip("%"))
    except ValueError:
        raise BenchError(f"not a percentage: {text!r} (use e.g. 15% or 0.15)") from None
    value = value / 100 if raw.endswith("%") or value > 1 else value
    if not 0 <= value:
        raise BenchError(f"a tolerance must not be negative, got {text!r}")
    return value


@dataclass(frozen=True)
class Finding:
    subject: str
    metric: str  # "latency N=100" or a quality metric
    baseline: float
    current: float
    regressed: bool
    detail: str

    def line(self) -> str:
        return f"{'REGRESSION' if self.regressed else 'ok'}: {self.subject}: {self.metric}: {self.detail}"


def _comparable(current: dict[str, Any], baseline: dict[str, Any]) -> None:
    cw, bw = current["workload"], baseline["workload"]
    for key in SAME_WORKLOAD:
        if cw.get(key) != bw.get(key):
            raise BenchError(
                f"run and baseline differ in workload '{key}' ({cw.get(key)!r} vs {bw.get(key)!r}); "
                "bench the baseline's suite or record a new baseline"
            )
    missing = sorted(set(bw["candidates"]) - set(cw["candidates"]))
    if missing:
        raise BenchError(f"the baseline has candidate counts {missing} that this run did not bench")
    if current["reference"]["shape"] != baseline["reference"]["shape"]:
        raise BenchError("run and baseline timed different reference workloads; latency ratios do not compare")


def compare(
    current: dict[str, Any], baseline: dict[str, Any], *, max_regression: float = 0.15, max_quality_drop: float = 0.005
) -> list[Finding]:
    """One finding per baseline subject and gated number; a subject missing from the run regresses."""
    _comparable(current, baseline)
    now = {s["name"]: s for s in current["subjects"]}
    findings = []
    for base in baseline["subjects"]:
        cur = now.get(base["name"])
        if cur is None:
            findings.append(Finding(base["name"], "present", 1, 0, True, "in the baseline but not benched in this run"))
            continue
        for n, b in base.get("latency", {}).items():
            c = cur["latency"][n]
            key, ms = _gated(b)
            change = c[key] / b[key] - 1
            findings.append(
                Finding(
                    base["name"],
                    f"latency N={n}",
                    b[key],
                    c[key],
                    change > max_regression,
                    f"{ms[:-3]} {c[ms]:.2f} ms = {c[key]:.3f}x reference (baseline "
                    f"{b[ms]:.2f} ms = {b[key]:.3f}x): {change:+.1%}, allowed +{max_regression:.0%}",
                )
            )
        for metric in QUALITY:
            b, c = base.get("quality", {}).get(metric), cur.get("quality", {}).get(metric)
            if b is None:
                continue
            if c is None:
                findings.append(Finding(base["name"], metric, b, float("nan"), True, "not measured in this run"))
                continue
            drop = b - c
            findings.append(
                Finding(
                    base["name"],
                    metric,
                    b,
                    c,
                    drop > max_quality_drop,
                    f"{c:.4f} (baseline {b:.4f}, drop {drop:+.4f}, allowed {max_quality_drop})",
                )
            )
    return findings


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The first run with each subject's latency per N taken from the attempt of lowest gated ratio.

    Quality is left as the first run measured it: it is deterministic, so a retry cannot change it.
    """
    if not runs:
        raise ValueError("no runs to combine")
    merged = [{**s, "latency": dict(s.get("latency", {}))} for s in runs[0]["subjects"]]
    by_name = {s["name"]: s["latency"] for s in merged}
    for run in runs[1:]:
        for subject in run["subjects"]:
            kept = by_name.get(subject["name"], {})
            for n, lat in subject.get("latency", {}).items():
                key = _gated(lat)[0]
                if n in kept and lat[key] < kept[n][key]:
                    kept[n] = lat
    return {**runs[0], "subjects": merged, "attempts": len(runs)}


def _gated(latency: dict[str, Any]) -> tuple[str, str]:
    """The gated ratio's key and the milliseconds it is made of (p50 in baselines older than the floor)."""
    return (
        ("floor_ratio_to_reference", "min_ms")
        if "floor_ratio_to_reference" in latency
        else ("ratio_to_reference", "p50_ms")
    )


def latency_regressed(findings: list[Finding]) -> list[str]:
    """The subjects with a regression a re-timing could clear (latency, not quality or a missing
    subject), so a retry re-times only them; empty when there is none."""
    return sorted({f.subject for f in findings if f.regressed and f.metric.startswith("latency")})


def report(findings: list[Finding]) -> tuple[bool, str]:
    """Whether the gate passes, and the lines to print (regressions first)."""
    lines = [f.line() for f in sorted(findings, key=lambda f: not f.regressed)]
    failed = sum(f.regressed for f in findings)
    verdict = (
        f"check: {failed} regression(s) in {len(findings)} checks"
        if failed
        else f"check: passed ({len(findings)} checks)"
    )
    return failed == 0, "\n".join(lines + [verdict])
