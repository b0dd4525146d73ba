"""Hostile input for the mock kernel: fuzzing campaigns over its datapath, its
command front ends, its ELF loader, verifier and VM (docs/fuzzing.md).

frames.py, commands.py and bpf.py are hypothesis strategies for structured
corruption; targets.py runs a case on the mock and says what counts as coping;
campaign.py is the loop with its watchdog; `python -m harness.fuzz` the runner.
"""
