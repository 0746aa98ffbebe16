"""The `corral` command: a thin client of the daemon's REST API, one module per verb group.

  main        parsing, the verb table, and the one place errors become exit codes
  run         run, create (ContainerSpec from docker's flags, Ctrl-C proxy)
  containers  start, ps, stop, kill, rm, wait, inspect
  logs, exec, images, events, system (version, info)
  format      tables, "5 seconds ago", sizes

It imports the API client and the API objects (agent.runtime.model), never the runtime's
machinery, BCC, prometheus_client, pyroute2, yaml or psutil: `corral ps` stays fast.
"""
