"""Container health checks: docker's HEALTHCHECK and `--health-*` flags.

`model.py` is the configuration (the spec's and the image's, merged), `state.py` the pure state
machine (starting, healthy, unhealthy; the last results), `probe.py` runs one check in the
container through the launcher's exec, `monitor.py` schedules the checks of every running
container off the request threads and tells the others (event log, ContainerBus), and
`metrics.py` exports `corral_container_health`.
"""
