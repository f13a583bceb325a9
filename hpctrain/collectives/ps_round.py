"""Parameter-server rounds for the algorithms: workers up to a server, one reply down.

The survey's (003) single parameter server: every worker sends its message to the server
(which is also a worker), the server combines them and sends one reply to every worker.
Algorithms supply the math (``serve``); this module owns the messages, their order and
their tags (:data:`~hpctrain.collectives.tags.TAGS`). Cost: (n-1) up-messages into one
rank, each after its turn (an empty message, as in :mod:`.ps`), and (n-1) replies out of
it, serialized at the server: 2(n-1)(alpha + M beta) + (n-1) alpha.
"""

from .payload_p2p import PAYLOAD
from .ps import GO
from .tags import TAGS

__all__ = ["SERVER", "server_round", "give_turn", "wait_turn"]

#: the rank that plays the parameter server (it is also a worker)
SERVER = 0


def server_round(comm, mine, serve, up=PAYLOAD, down=PAYLOAD, server=SERVER):
    """One parameter-server round.

    Args:
        comm: a :class:`~hpctrain.comm.Communicator`.
        mine: this worker's message (sent to the server; the server's own is passed to
            ``serve`` directly).
        serve: ``serve(messages) -> reply``, called on the server only, with every
            worker's message in rank order.
        up, down: wire codecs of the two directions (:mod:`.payload_p2p`: ``PAYLOAD``,
            ``Pairs(dtype)``, ``Dense(out)``).
        server: the server's rank.

    Returns:
        The reply, on every rank (the server's own object on the server).
    """
    n, r = comm.size, comm.rank
    if r == server:
        messages = [mine if src == server else _turn(comm, up, src) for src in range(n)]
        reply = serve(messages)
        for dst in range(n):
            if dst != server:
                down.send(comm, reply, dst, TAGS["ps-down"])
        return reply
    wait_turn(comm, server)
    up.send(comm, mine, server, TAGS["ps-up"])
    return down.recv(comm, server, TAGS["ps-down"])


def give_turn(comm, worker):
    """Server side: let ``worker`` send its message up now. One worker sends at a time, as
    the server reads them, so their messages never crowd into its link at once (a switch's
    shallow buffer drops such an incast, and the flows stall)."""
    comm.send(GO, worker, TAGS["ps-go"])


def wait_turn(comm, server):
    """Worker side: wait until ``server`` gives this rank its turn to send up."""
    comm.recv(GO, server, TAGS["ps-go"])


def _turn(comm, up, src):
    """Worker ``src``'s message, sent on its turn."""
    give_turn(comm, src)
    return up.recv(comm, src, TAGS["ps-up"])


def cost_steps(n, S, down=None, messages=1, down_messages=None, **_):
    """One server round: n - 1 turns (empty messages), n - 1 messages of S bytes into the
    server one after another, n - 1 replies of ``down`` bytes (default S) out of it, into
    the workers' buffers; each in ``messages`` (``down_messages``) messages, the extra ones
    small (a length, a version)."""
    down = S if down is None else down
    dm = messages if down_messages is None else down_messages
    return [("oneway", n - 1, 0), ("oneway", n - 1, S), ("oneway-sent", n - 1, down),
            ("oneway", (n - 1) * (messages + dm - 2), 8.0)]


def sent_bytes(n, S, down=None, **_):
    """Bytes all ranks send together in one round: n - 1 up, n - 1 replies down."""
    return (n - 1) * (S + (S if down is None else down))


def sent_messages(n, S, down=None, messages=1, down_messages=None, **_):
    """Messages all ranks send together in one round: n - 1 turns, n - 1 up and n - 1
    down, of ``messages`` and ``down_messages`` messages each."""
    return (n - 1) * (1 + messages + (messages if down_messages is None else down_messages))
