"""Message tags of the point-to-point rounds that algorithms run through collectives/.

One table, so two rounds can never collide by accident. The dense collectives keep their
own small tags inside their modules (each finishes before the next starts); these are the
rounds an algorithm may interleave with them.
"""

__all__ = ["TAGS"]

#: round name -> first tag; a codec may use tag, tag + 1 and tag + 2 (count, indices, values)
TAGS = {
    "sparse-count": 50,     # ring allgather of the sparse counts
    "sparse-data": 51,      # ring allgatherv (one tag per gathered array: 51, 52, ...)
    "ps-up": 300,           # workers -> server (parameter-server round)
    "ps-down": 310,         # server -> workers
    "ps-go": 320,           # server -> a worker: its turn to send up (empty)
    "ring-hop": 420,        # unpartitioned compressed ring: rank r -> r + 1
    "ring-final": 430,      # the ring's final result, forwarded once around
    "async-grad": 600,      # asynchronous SGD: a gradient to the server
    "async-version": 603,   # and the model version it was computed at
    "async-pull": 610,      # the server's model to a pulling worker
}
assert len(set(TAGS.values())) == len(TAGS)
