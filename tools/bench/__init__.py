"""Benchmarks, not tests: `python -m tools.bench index|serve` (`__main__` says what each measures)."""
