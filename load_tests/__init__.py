"""Load tests and benchmarks (outside the default test run)."""
