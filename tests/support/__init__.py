"""Test infrastructure: real servers in child processes, and an exact SSE reader.

- `redis_server.RedisServer`: a private `redis-server` on a free loopback port.
- `redis_cluster.LocalCluster`: a private Redis Cluster (primaries + replicas) with
  failover, live slot migration and Pub/Sub faults on demand.
- `uvicorn_server.UvicornServer`: an ASGI app served by a real uvicorn process.
- `sse`: read Server-Sent Events over httpx, parsed as a browser does.
- `fixtures`: the pytest fixtures built on them (loaded by `tests/conftest.py`).
- `markdown`: the fenced code blocks of a docs page, with their `<!-- kind: text -->` notes.
- `docs_context`: the names the docs' Python samples may use without defining them.
- `repo_copy`: a fresh copy of the repository to run the README's commands in.

Every wait here is bounded, and every child process is stopped on exit (and killed
by the kernel if the test run itself dies: see `_process`).
"""
