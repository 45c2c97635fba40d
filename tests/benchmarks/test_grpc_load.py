"""benchmarks/grpc_load.py: the connection split that the gRPC rounds report beside their p99."""

from __future__ import annotations

import multiprocessing
import socket

from benchmarks.grpc_load import connection_split


def test_the_split_counts_the_connections_each_process_accepted_on_the_port() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    context = multiprocessing.get_context("fork")
    accepted, release = context.Event(), context.Event()

    def child() -> None:  # another process that accepted two of the connections, as a gRPC worker does
        held = [listener.accept()[0] for _ in range(2)]
        accepted.set()
        release.wait(30)
        del held

    process = context.Process(target=child)
    process.start()
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        assert accepted.wait(10)
        # Both processes hold the listening socket: this one, with no connection yet, counts as 0.
        assert connection_split(port) == "2/0"
        clients.append(socket.create_connection(("127.0.0.1", port)))
        mine, _ = listener.accept()
        # The clients' own sockets (their local port is another) are not counted.
        assert connection_split(port) == "2/1"
        mine.close()
    finally:
        release.set()
        process.join(10)
        for client in clients:
            client.close()
        listener.close()
    assert connection_split(port) == ""
