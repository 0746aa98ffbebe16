"""The daemon's REST API on a UNIX socket, and its client.

  server     `ApiServer`: HTTP/1.1 over AF_UNIX, one thread per connection, error mapping
  routes     `Router`, `Request`, `Response`: the route table other parts add their routes to
  endpoints  the v1 routes for the daemon, containers, images and events
  *_endpoints  further route groups (networks, ...), registered through ApiServer(extra_routes=)
  bodies     request bodies that are not runtime objects (exec, image import)
  frames     Docker's stream framing for logs and exec output
  client     `ApiClient`: the stdlib-only client the CLI uses
  openapi.yaml  the description of every route and schema

The client side (client, frames) imports nothing from the runtime, so the CLI stays light.
"""
