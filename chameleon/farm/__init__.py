"""The RPC tuning farm, built on TVM's own RPC tracker, RPC server and MetaSchedule RPCRunner.

- ``tracker``: parse ``HOST:PORT``, TVM_TRACKER_* variables, reachability, queue status, waiting
  for devices of a key.
- ``processes``: start/stop TVM's tracker and servers as process groups; ``LocalFarm``.
- ``runner``: ``FarmConfig`` and ``make_farm_runner``, a MetaSchedule runner that measures on every
  device of a key and retries measurements whose device died or hung.
- ``cli``: the ``chameleon farm`` commands (tracker, server, status, local).

Submodules are imported explicitly (``from chameleon.farm.runner import ...``) so that the CLI does
not pay for importing MetaSchedule.
"""
