"""The mock at line rate: a virtual-time model of NIC rings, interrupt
coalescing, NAPI and the CPUs' softirq time, fed with packet trains, on top of
the kernel's functional path (engine.py); RSS queue selection (rss.py); the
per-packet CPU cost of each journey (cost.py) and its calibration from measured
runs (calibrate.py). MockTarget.traffic() runs it.
"""
