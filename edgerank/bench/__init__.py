"""``edgerank bench``: latency, memory and ranking quality of artifacts, torch models and peers, side by side.

Modules, each with one job: ``candidates`` (fixed-size candidate lists), ``timing`` (the timing loop),
``reference`` (the GEMM every run times so CI compares ratios), ``memory`` (peak RSS in a fresh
process), ``subjects`` / ``peers`` / ``gpu`` (what gets run), ``runner`` (one benchmark, end to end),
``check`` (the CI regression gate), ``report`` / ``plot`` (markdown, JSON, Pareto PNG), ``machine``
and ``suite`` (what ran where, and with which settings).

Kept free of heavy imports: the memory probe and the optimum peer import parts of this package.
"""


class BenchError(ValueError):
    """A benchmark that cannot run or be checked as asked (bad suite, mismatched baseline), in one line."""
