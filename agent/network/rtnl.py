"""A few rtnetlink requests encoded by hand: the pool's items (pool.py, prepared.py) and the
deletion of container veths.

pyroute2 (bridge.py) builds and decodes each message in Python, ~0.5 ms apiece here, and opening
its socket costs ~1 ms. A start from the pool needs one to five requests (the host end renamed
and up, or moved to another bridge; eth0's MAC and link, its address, its default route), a
container's exit one link deletion per possible veth. These are fixed layouts of a few dozen
bytes (linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h), so they are packed with `struct`
and each answer is read only for its error: ~30 us a request. The pool's refill (a veth pair
with its peer in a new namespace, lookups, eth0's settings) uses them too, so the thread that
refills it holds the GIL for microseconds, not milliseconds, while a start runs beside it.

`Rtnl` wraps one NETLINK_ROUTE socket; a socket acts in the network namespace it was opened in,
which is how the pool reaches inside a namespace without entering it (pool.py).
"""
from __future__ import annotations

import errno
import os
import socket
import struct

from agent.errors import KernelError

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE = 16, 17, 18, 20, 21, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY, RTA_OIF = 5, 4
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HEADER = struct.Struct("=IHHII")          # struct nlmsghdr
_IFINFO = struct.Struct("=BxHiII")         # struct ifinfomsg
_IFADDR = struct.Struct("=BBBBI")          # struct ifaddrmsg
_RTMSG = struct.Struct("=BBBBBBBBI")       # struct rtmsg


def _attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _name(name: str) -> bytes:
    return name.encode() + b"\0"


class Rtnl:
    """One rtnetlink socket, in the namespace it was opened in; used by one thread at a time."""

    def __init__(self) -> None:
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
            self._sock.bind((0, 0))
        except OSError as exc:
            raise KernelError(f"cannot open a netlink socket: {exc.strerror}") from exc
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def _request(self, kind: int, flags: int, body: bytes, what: str, ignore: tuple[int, ...] = ()) -> bytes:
        """Send one request; the answer's body (a get's), or b"" for an acknowledgement (or an
        error whose errno is in `ignore`)."""
        self._seq += 1
        ack = 0 if kind == RTM_GETLINK else NLM_F_ACK     # a get's answer is its acknowledgement
        message = _HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | ack | flags, self._seq, 0) + body
        try:
            self._sock.send(message)
            while True:
                answer = self._sock.recv(65536)
                _, answer_kind, _, seq, _ = _HEADER.unpack_from(answer)
                if seq != self._seq:
                    continue                  # a late answer to a request that failed before
                if answer_kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", answer, _HEADER.size)[0]
                    if code and code not in ignore:
                        raise KernelError(f"{what}: {os.strerror(code)}")
                    return b""
                return answer[_HEADER.size:]
        except OSError as exc:
            raise KernelError(f"{what}: {exc.strerror}") from exc

    def index_of(self, name: str) -> int:
        """The index of link `name` in this socket's namespace (RTM_GETLINK by name)."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name))
        answer = self._request(RTM_GETLINK, 0, body, f"cannot find interface {name}")
        return int(_IFINFO.unpack_from(answer)[2])

    def del_link(self, name: str) -> None:
        """RTM_DELLINK by name (a veth takes its peer with it); a missing link is not an error.
        While the kernel is deleting the link with its namespace this waits for that (rtnl lock)."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name))
        self._request(RTM_DELLINK, 0, body, f"cannot delete interface {name}", ignore=(errno.ENODEV, errno.ENOENT))

    def add_veth(self, name: str, *, master: int, peer: str, peer_netns: int, what: str = "") -> None:
        """RTM_NEWLINK: a veth pair, `name` here on bridge `master` (down), `peer` in the
        namespace of the descriptor `peer_netns` (down)."""
        peer_info = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(peer))
                     + _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns)))
        linkinfo = _attr(IFLA_INFO_KIND, b"veth\0") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_info))
        body = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name))
                + _attr(IFLA_MASTER, struct.pack("=I", master)) + _attr(IFLA_LINKINFO, linkinfo))
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, what or f"cannot create veth {name}")

    def set_link(self, index: int, *, name: str | None = None, mac: str | None = None,
                 master: int | None = None, up: bool = False, what: str = "") -> None:
        """RTM_NEWLINK on an existing link: rename, MAC, bridge and IFF_UP in one request."""
        attrs = b""
        if name is not None:
            attrs += _attr(IFLA_IFNAME, _name(name))
        if mac is not None:
            attrs += _attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
        if master is not None:
            attrs += _attr(IFLA_MASTER, struct.pack("=I", master))
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0) + attrs
        self._request(RTM_NEWLINK, 0, body, what or f"cannot set up interface {index}")

    def add_address(self, index: int, address: str, prefix: int, *, what: str = "") -> None:
        """RTM_NEWADDR: `address/prefix` on the link (its subnet's route comes with it)."""
        self._address(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, index, address, prefix,
                      what or f"cannot add {address}/{prefix}")

    def del_address(self, index: int, address: str, prefix: int, *, what: str = "") -> None:
        """RTM_DELADDR: `address/prefix` off the link (its subnet's route goes with it)."""
        self._address(RTM_DELADDR, 0, index, address, prefix, what or f"cannot remove {address}/{prefix}")

    def _address(self, kind: int, flags: int, index: int, address: str, prefix: int, what: str) -> None:
        packed = socket.inet_aton(address)
        body = (_IFADDR.pack(socket.AF_INET, prefix, 0, RT_SCOPE_UNIVERSE, index)
                + _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed))
        self._request(kind, flags, body, what)

    def add_default_route(self, index: int, gateway: str, *, what: str = "") -> None:
        """RTM_NEWROUTE: the default route via `gateway` out of the link."""
        body = (_RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
                + _attr(RTA_GATEWAY, socket.inet_aton(gateway)) + _attr(RTA_OIF, struct.pack("=I", index)))
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, what or f"cannot add the default route via {gateway}")
