"""Docker's Engine API next to Corral's own: the `docker` CLI, docker-py and Compose drive Corral.

Served on its own UNIX socket (`corral daemon --docker-socket`, default
/run/corral/docker.sock). Every handler calls Corral's runtime, image store and network manager
directly (never HTTP to Corral's own socket), so a container made here is an ordinary Corral
container: probes, policies, metrics and `corral ps` see it.

  server      the socket, HTTP/1.1 with chunked request bodies and the 101 hijack
  router      routes bare and under /v1.NN/, the request and reply objects
  version     the API versions claimed and the negotiation check
  errors      Docker's error body {"message"} and status codes
  system      _ping, version, info, events, system/df, and what answers 503 (swarm, plugins)
  containers  the container verbs; create (create.py), the docker views (views.py),
              logs/attach/stats/top (streams.py), exec (execs.py)
  images, networks, volumes   their routes
  filters     Docker's JSON `filters` query parameter
  openapi.yaml  the routes described (tests/unit/test_dockerapi_openapi.py checks it)

docs/docker-api.md lists every route with its status.
"""
