"""The redis images' stand-in: Redis's protocol and answers (servers.redis), and which images and
flags make a master or a replica (plan.images, plan.containers)."""
from __future__ import annotations

import asyncio
import socket

from kubenet_lab.model.objects import Container, ContainerPort, RunHttp
from kubenet_lab.plan.containers import resolve, serving
from kubenet_lab.servers.base import Served, ServerContext
from kubenet_lab.servers.redis import Redis, start_redis


def run(redis: Redis, *words: str) -> bytes:
    reply, _ = redis.execute([w.encode() for w in words])
    return reply


def test_ping_echo_and_the_key_space():
    r = Redis()
    assert run(r, "PING") == b"+PONG\r\n" and run(r, "ping", "hi") == b"$2\r\nhi\r\n"
    assert run(r, "ECHO", "hello world") == b"$11\r\nhello world\r\n"
    assert run(r, "GET", "k") == b"$-1\r\n"
    assert run(r, "SET", "k", "v") == b"+OK\r\n" and run(r, "GET", "k") == b"$1\r\nv\r\n"
    assert run(r, "EXISTS", "k", "k", "nope") == b":2\r\n"
    assert run(r, "SET", "k", "w", "NX") == b"$-1\r\n" and run(r, "SET", "new", "x", "XX") == b"$-1\r\n"
    assert run(r, "DEL", "k", "nope") == b":1\r\n" and run(r, "GET", "k") == b"$-1\r\n"
    assert [run(r, "INCR", "n") for _ in range(3)] == [b":1\r\n", b":2\r\n", b":3\r\n"]
    assert run(r, "SET", "s", "abc") == b"+OK\r\n"
    assert run(r, "INCR", "s") == b"-ERR value is not an integer or out of range\r\n"
    assert run(r, "SET", "big", str(2 ** 63 - 1)) == b"+OK\r\n"
    assert run(r, "INCR", "big") == b"-ERR increment or decrement would overflow\r\n"
    assert r.execute([b"QUIT"]) == (b"+OK\r\n", True)


def test_expiry_by_the_servers_clock():
    now = [100.0]
    r = Redis(clock=lambda: now[0])
    assert run(r, "SET", "k", "v", "EX", "10") == b"+OK\r\n" and run(r, "SET", "p", "v", "PX", "500") == b"+OK\r\n"
    now[0] = 100.6
    assert run(r, "EXISTS", "k", "p") == b":1\r\n"
    now[0] = 110.0
    assert run(r, "GET", "k") == b"$-1\r\n"
    assert run(r, "SET", "k", "v", "EX", "0") == b"-ERR invalid expire time in 'set' command\r\n"
    assert run(r, "SET", "k", "v", "EX", "soon") == b"-ERR value is not an integer or out of range\r\n"
    assert run(r, "SET", "k", "v", "NX", "XX") == b"-ERR syntax error\r\n"


def test_errors_are_worded_as_redis_words_them():
    r = Redis()
    assert (run(r, "FLY", "to", "the moon")
            == b"-ERR unknown command 'FLY', with args beginning with: 'to' 'the moon' \r\n")
    assert run(r, "nope") == b"-ERR unknown command 'nope', with args beginning with: \r\n"
    long = run(r, "X", "a" * 200, "b")
    assert long == b"-ERR unknown command 'X', with args beginning with: '" + b"a" * 128 + b"' \r\n"
    assert run(r, "X", "line\r\nbreak") == b"-ERR unknown command 'X', with args beginning with: 'line  break' \r\n"
    assert run(r, "GET") == b"-ERR wrong number of arguments for 'get' command\r\n"
    assert run(r, "Set", "k") == b"-ERR wrong number of arguments for 'set' command\r\n"


def test_info_replication_says_the_role():
    master = run(Redis(), "INFO", "replication")
    assert master == b"$48\r\n# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n"
    replica = Redis(replica_of=("redis-master", 6379))
    text = run(replica, "INFO", "replication").decode()
    assert "role:slave\r\nmaster_host:redis-master\r\nmaster_port:6379\r\n" in text
    assert "# Server\r\nredis_mode:standalone\r\ntcp_port:6379\r\n" in run(replica, "INFO").decode()
    assert run(replica, "INFO", "keyspace") == b"$0\r\n\r\n"
    # a replica is read-only, and reads what it has
    assert run(replica, "SET", "k", "v") == b"-READONLY You can't write against a read only replica.\r\n"
    assert run(replica, "GET", "k") == b"$-1\r\n" and run(replica, "PING") == b"+PONG\r\n"


def test_a_real_connection_speaks_resp_and_inline_commands():
    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        lines: list[str] = []
        served = Served()
        await start_redis(ServerContext(hostname="redis-master-x", log=lines.append), [sock], served)
        try:
            reader, writer = await asyncio.open_connection(*sock.getsockname())
            writer.write(b"PING\r\n*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$5\r\nworld\r\n\r\nGET hello\r\n")
            replies = b"+PONG\r\n+OK\r\n$5\r\nworld\r\n"
            assert await reader.readexactly(len(replies)) == replies
            writer.write(b"QUIT\r\n")
            assert await reader.read() == b"+OK\r\n"  # and the server closes
            writer.close()
            reader, writer = await asyncio.open_connection(*sock.getsockname())
            writer.write(b"*1\r\n+PING\r\n")
            assert await reader.read() == b"-ERR Protocol error: expected '$', got '+'\r\n"
            writer.close()
            assert lines == [f"listening on TCP port {sock.getsockname()[1]} (built-in redis server, master)"]
        finally:
            served.close()
    asyncio.run(asyncio.wait_for(main(), 30))


def test_redis_images_speak_redis_on_their_port_and_know_their_role():
    master = resolve(Container("master", "registry.k8s.io/redis:e2e", ports=(ContainerPort(6379),))).run
    assert master == RunHttp(ports=(6379,), redis_ports=(6379,))
    assert serving(master) == "the built-in HTTP server on Redis 6379"
    slave = resolve(Container("slave", "gcr.io/google_samples/gb-redisslave:v1", ports=(ContainerPort(6379),))).run
    assert (slave.redis_ports, slave.replica_of) == ((6379,), ("redis-master", 6379))
    follower = resolve(Container("f", "us-docker.pkg.dev/google-samples/containers/gke/gb-redis-follower:v2")).run
    assert follower.replica_of == ("redis-leader", 6379)
    # the docker-library image: args go to redis-server, which says where and whose replica
    own = resolve(Container("r", "redis:7.2", args=("--port", "7000", "--replicaof", "db-0.db", "6380"))).run
    assert (own.ports, own.redis_ports, own.replica_of) == ((7000,), (7000,), ("db-0.db", 6380))
    cmd = resolve(Container("r", "redis", command=("redis-server", "--replicaof", "m 6379")),
                  has_program=lambda p: False).run
    assert cmd.replica_of == ("m", 6379) and cmd.redis_ports == (6379,)
    # other ports of the pod stay HTTP; other images speak no redis
    extra = resolve(Container("m", "redis", ports=(ContainerPort(6379), ContainerPort(8080)))).run
    assert (extra.ports, extra.redis_ports) == ((6379, 8080), (6379,))
    assert resolve(Container("n", "nginx")).run.redis_ports == ()
