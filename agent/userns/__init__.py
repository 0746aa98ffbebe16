"""User namespaces (`--userns=auto`): container root mapped to an unprivileged host range.

`ranges.py` reads /etc/subuid and /etc/subgid and picks each container its own 65536 ids
(pure logic); `allocator.py` hands ranges out so that no two live containers share one, the
container records being the persisted allocation; `ownership.py` makes the image's files
belong to the mapped ids (idmapped lower layers, or a chown of the container's copy);
agent/doctor/userns.py says whether this host can do it (`corral doctor`). The launcher writes the maps
and clones the user namespace (launcher/userns.c). docs/security.md, "User namespaces".
"""
