"""Benchmarks, run by `python -m benchmarks [NAME ...]`.

Each prints its figures one per line as `figure NAME VALUE UNIT`; notes go to
stderr. Figures for the real kernel (`kernel.*`) need root and the netns lab;
without them the benchmark says why on stderr and prints only the mock figures.
"""
