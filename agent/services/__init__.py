"""Services: N replicas of one image behind one published port, kept running, scaled and updated.

On one host Corral runs services itself; across hosts users move to Kubernetes (docs/services.md).

- `model.py`: the schemas: `ServiceSpec` (what `service create` asks for), `ServiceChange`
  (`service update`), and the daemon's record of a service (`Service`);
- `store.py`: one JSON file per service below the daemon's root (desired state survives restarts);
- `replicas.py`: a replica's ContainerSpec and labels, and what the kernel says of it (its port
  listens, its connections have drained);
- `balancer.py`: the one published port, an nftables numgen map DNAT over the ready replicas;
- `rolling.py`: the rolling update of a batch of replicas;
- `reconciler.py`: one worker per service keeping running == desired, woken by container events;
- `manager.py`: `ServiceManager`, the verbs the API calls.
"""
