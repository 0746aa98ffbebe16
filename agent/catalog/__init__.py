"""The catalogue of every container on the host, and the bus that tells parts when one changes.

`ContainerCatalog` (catalog.py) knows Corral's own containers and the observed ones as one
typed record (`CatalogEntry`, entry.py), indexed by id, name and cgroup id. The runtime and
discovery publish `placed` / `started` / `stopped` / `removed` on the `ContainerBus` (bus.py);
the catalogue is its first subscriber, then the probes, the policy enforcer and the event log.
Every reader (metrics, stats, policies, probe events) asks the catalogue, so an observed
container is first-class everywhere and nothing below the daemon calls back up.
"""
