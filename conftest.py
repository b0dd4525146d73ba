"""Repository-level pytest glue. The harness itself is the `harness.plugin` entry point
(installed by `pip install -e .`), so suites run the same from any directory."""
