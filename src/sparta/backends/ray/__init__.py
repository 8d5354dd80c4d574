"""``backend.placement: ray``: the HF tribe as data-parallel Ray workers (DESIGN section 7).

    cluster.py  start a private loopback-only cluster, or join one (``ray.address``)
    worker.py   the worker actor: the whole pool (base model(s) + every member's adapter) on its own device
    workers.py  the group of workers: dispatch in order, progress, a lost worker as a clear error
    learner.py  training: members spread over the workers, adapters back to the driver as bytes
    tribe.py    the Tribe contract over the workers; registered as placement ``ray``

The driver (the process running the round loop) alone reads and writes the run directory; workers get requests,
pairs and adapters as Ray objects and send results back the same way, so no filesystem is shared.
Importing this package needs ``ray`` (the ``sparta-align[ray]`` extra), not torch: the driver never loads a model.
"""
