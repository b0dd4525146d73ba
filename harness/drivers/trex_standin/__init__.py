"""A stand-in for a TRex server (TRex's JSON-RPC over ZMQ on this host's ports): the
real TRex cannot run here. `python -m harness.drivers.trex_standin --help`."""
