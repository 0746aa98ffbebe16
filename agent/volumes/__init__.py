"""Volumes: directories the daemon keeps under `<root>/volumes/<name>/_data`, each with its
record (`volume.json`), mounted into containers with `-v NAME:/path` or `--mount type=volume`.
model.py is the one schema of a volume, store.py keeps them, usage.py measures their size on a
slow interval for `corral_volume_bytes`. Which containers use a volume is the runtime's to say
(agent/runtime/volumes.py): nothing here knows about containers.
"""
