"""Test infrastructure: real servers in child processes, and an exact SSE reader.

- `redis_server.RedisServer`: a private `redis-server` on a free loopback port.
- `redis_cluster.LocalCluster`: a private Redis Cluster (primaries + replicas) with
  failover, live slot migration and Pub/Sub faults on demand.
- `uvicorn_server.UvicornServer`: an ASGI app served by a real uvicorn process.
- `sse`: read Server-Sent Events over httpx, parsed as a browser does.
- `fixtures`: the pytest fixtures built on them (loaded by `tests/conftest.py`).

Every wait here is bounded, and every child process is stopped on exit (and killed
by the kernel if the test run itself dies: see `_process`).
"""
