"""The reliability suite: fuzzed runtime input, load and hostile clients against `edgerank serve`,
tampered artifacts, and killed writers. Fast samples run in the tests; `python -m bench.reliability`
runs it whole and writes bench/results/reliability.md."""
