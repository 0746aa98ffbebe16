"""Container networking: bridges, veth pairs, addresses, NAT and published ports.

`NetworkManager` (manager.py) is the one entry point the runtime and the API use. Below it each
module has one job: `model.py` the API objects (Network, PortMapping, Attachment), `ipam.py` the
persistent address allocator of a network, `bridge.py` the netlink side (pyroute2: bridge, veth,
addresses, routes, sysctls), `nat.py` the nftables side (one table owned by Corral: masquerade
and DNAT of published ports), `store.py` the state on disk, `rendering.py` the /etc/hosts,
/etc/hostname and /etc/resolv.conf a container is given, `ports.py` the published-port checks,
`subnets.py` subnet planning, `interfaces.py` the names of veths and bridges; `manager.py` orchestrates them. Nothing here shells out to `ip`
or touches an interface, address or nft table that Corral did not create. docs/networking.md is the user's guide.
"""
