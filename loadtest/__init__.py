"""Load tests and benchmarks for liveshop (see loadtest/README.md). Not part of the package."""
