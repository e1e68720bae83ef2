"""The userspace proxy's socket pump (servers/userspace.py) on loopback: TCP both ways with the
half close passed on, a dial that fails retried on the next backend, a service port without
backends closing at once; UDP replies from the proxy port to each client, one backend per client
until it is idle for the timeout, then a new choice."""
import asyncio
import socket

from kubenet_lab.servers.base import Served
from kubenet_lab.servers.userspace import UdpProxy, serve_tcp


def _listener(kind: int = socket.SOCK_STREAM) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        sock.listen(16)
    sock.setblocking(False)
    return sock


def _new_socket(kind: int) -> socket.socket:
    return socket.socket(socket.AF_INET, kind)


def test_tcp_pumps_both_ways_and_passes_the_half_close_on():
    async def main():
        async def backend(reader, writer):
            data = await reader.read()  # until the client's half close arrives
            writer.write(b"got " + data)
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(backend, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        choices = []

        def choose(client, reset):
            choices.append((client, reset))
            return f"127.0.0.1:{port}"
        listener, served = _listener(), Served()
        await serve_tcp(listener, choose, _new_socket, served)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        writer.write(b"hello")
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        served.close()
        server.close()
        return answer, choices
    answer, choices = asyncio.run(main())
    assert answer == b"got hello"
    assert choices == [("127.0.0.1", False)]


def test_a_failed_dial_tries_the_next_backend_with_the_affinity_reset():
    async def main():
        async def backend(reader, writer):
            writer.write(b"alive")
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(backend, "127.0.0.1", 0)
        alive = server.sockets[0].getsockname()[1]
        dead = _listener()
        dead_port = dead.getsockname()[1]
        dead.close()  # nothing listens there: the dial is refused
        order = iter([f"127.0.0.1:{dead_port}", f"127.0.0.1:{alive}"])
        resets = []

        def choose(client, reset):
            resets.append(reset)
            return next(order)
        listener, served = _listener(), Served()
        await serve_tcp(listener, choose, _new_socket, served)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        served.close()
        server.close()
        return answer, resets
    answer, resets = asyncio.run(main())
    assert answer == b"alive" and resets == [False, True]


def test_no_backend_closes_the_connection():
    async def main():
        def choose(client, reset):
            raise LookupError("no endpoints")
        listener, served = _listener(), Served()
        await serve_tcp(listener, choose, _new_socket, served)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        served.close()
        return answer
    assert asyncio.run(main()) == b""


def test_udp_keeps_a_client_on_its_backend_until_idle_then_chooses_again():
    async def main():
        loop = asyncio.get_running_loop()
        backends = []
        for name in (b"one", b"two"):
            sock = _listener(socket.SOCK_DGRAM)
            backends.append((name, sock))

            def answer(sock=sock, name=name):
                data, addr = sock.recvfrom(100)
                sock.sendto(name + b":" + data, addr)
            loop.add_reader(sock, answer)
        turn = iter(range(100))

        def choose(client, reset):
            return "127.0.0.1:%d" % backends[next(turn) % 2][1].getsockname()[1]
        proxy_sock = _listener(socket.SOCK_DGRAM)
        proxy_addr = proxy_sock.getsockname()
        proxy = UdpProxy(proxy_sock, choose, _new_socket, idle_timeout=1.0)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setblocking(False)
        client.bind(("127.0.0.1", 0))

        async def ask(msg: bytes) -> tuple[bytes, tuple]:
            client.sendto(msg, proxy_addr)
            return await asyncio.wait_for(loop.sock_recvfrom(client, 100), 5)
        first, src = await ask(b"a")
        second, _ = await ask(b"b")  # the same client, within the timeout: the same backend
        async def forgotten():  # once idle for the timeout
            while proxy.clients:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(forgotten(), 10)
        third, _ = await ask(b"c")
        proxy.close()
        client.close()
        for _, sock in backends:
            loop.remove_reader(sock)
            sock.close()
        return first, second, third, src, proxy_addr
    first, second, third, src, proxy_addr = asyncio.run(main())
    assert (first, second, third) == (b"one:a", b"one:b", b"two:c")
    assert src == proxy_addr  # replies come from the proxy port
