"""What `--format` templates see for each row of `ps`, `images`, `stats`, `events` and
`network ls`: docker's formatting contexts, field for field (cli/command/formatter in docker),
built from the API's objects. Each has HEADERS, the column titles a `table` format shows.

Docker's names and shapes: `{{.ID}}` is the 12-digit id (full with --no-trunc), `{{.Command}}`
is quoted, `{{.RunningFor}}` is "5 seconds ago", `{{.CreatedAt}}` is Go's time.String()
("2024-05-01 12:00:00 +0000 UTC"), `{{.Labels}}` is "k=v,k2=v2", `{{.Label "k"}}` one value.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from agent.cli.format import ago, container_status, ellipsis, human_size, short_id
from agent.cli.gotemplate import Fields
from agent.cli.gotemplate.functions import go_string
from agent.cli.gotemplate.printf import go_quote

if TYPE_CHECKING:
    from agent.cli.stats_rows import StatsRow


def go_time(timestamp: float | None) -> str:
    """Go's time.Time.String() of whole seconds, in local time: 2024-05-01 12:00:00 +0000 UTC."""
    if timestamp is None:
        return ""
    moment = datetime.fromtimestamp(int(timestamp)).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %z ") + (moment.tzname() or "")


def _labels(labels: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def binary_size(size: float | None) -> str:
    """docker's units.BytesSize: 1.953MiB, four significant digits, binary units."""
    if size is None:
        return "--"
    value, unit = float(size), 0
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.4g}{units[unit]}"


class ContainerFields(Fields):
    """`corral ps --format`: docker's ContainerContext."""

    kind = "container"
    HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
               "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
               "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
               "Networks": "NETWORKS"}

    def __init__(self, container: dict, now: float, truncate: bool = True) -> None:
        self._c = container
        self._spec = container.get("spec") or {}
        self._now = now
        self._truncate = truncate

    def ID(self) -> str:
        return short_id(self._c["id"]) if self._truncate else self._c["id"]

    def Image(self) -> str:
        return self._spec.get("image", "")

    def Command(self) -> str:
        words = self._c.get("command") or list(self._spec.get("entrypoint") or []) + list(
            self._spec.get("command") or [])
        text = " ".join(words)
        return go_quote(ellipsis(text, 20) if self._truncate else text)

    def CreatedAt(self) -> str:
        return go_time(self._c.get("created_at"))

    def RunningFor(self) -> str:
        return ago(self._c.get("created_at"), self._now)

    def Ports(self) -> str:
        ports = ((self._c.get("network") or {}).get("ports")) or []
        return ", ".join(f"{p['host_ip']}:{p['host_port']}->{p['container_port']}/{p['protocol']}" for p in ports)

    def State(self) -> str:
        return self._c.get("state", "")

    def Status(self) -> str:
        return container_status(self._c, self._now)

    def Size(self) -> str:
        return "0B"      # docker too, unless --size asks for it; Corral does not measure it

    def Names(self) -> str:
        return self._c.get("name", "")

    def Labels(self) -> str:
        return _labels(self._spec.get("labels") or {})

    def Label(self, name: str) -> str:
        return (self._spec.get("labels") or {}).get(name, "")

    def Mounts(self) -> str:
        # docker: a volume by its name, a bind by its host path
        sources = [mount.get("name") or mount.get("source") or "" for mount in self._spec.get("mounts") or []]
        return ",".join(ellipsis(source, 15) if self._truncate else source for source in sources)

    def LocalVolumes(self) -> str:
        return str(sum(1 for mount in self._spec.get("mounts") or [] if mount.get("type") == "volume"))

    def Networks(self) -> str:
        attached = (self._c.get("network") or {}).get("network")
        return attached or self._spec.get("network", "")


class ImageFields(Fields):
    """`corral images --format`: docker's ImageContext."""

    kind = "image"
    HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
               "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
               "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"}

    def __init__(self, image: dict, now: float, truncate: bool = True) -> None:
        self._i = image
        self._now = now
        self._truncate = truncate

    def ID(self) -> str:
        return short_id(self._i.get("id", "")) if self._truncate else self._i.get("id", "")

    def Repository(self) -> str:
        return self._i.get("name") or "<none>"

    def Tag(self) -> str:
        return self._i.get("tag") or "<none>"

    def Digest(self) -> str:
        for entry in self._i.get("repo_digests") or []:
            name, _, digest = entry.partition("@")
            if name == self._i.get("name"):
                return digest
        return "<none>"

    def CreatedSince(self) -> str:
        return ago(self._i.get("created"), self._now)

    def CreatedAt(self) -> str:
        return go_time(self._i.get("created"))

    def Size(self) -> str:
        return human_size(self._i.get("size"))

    def VirtualSize(self) -> str:
        return self.Size()

    def Containers(self) -> str:
        return "N/A"

    def SharedSize(self) -> str:
        return "N/A"

    def UniqueSize(self) -> str:
        return "N/A"


class NetworkFields(Fields):
    """`corral network ls --format`: docker's NetworkContext, plus Corral's Subnet, Gateway, Bridge."""

    kind = "network"
    HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
               "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT", "Subnet": "SUBNET",
               "Gateway": "GATEWAY", "Bridge": "BRIDGE"}

    def __init__(self, network: dict) -> None:
        self._n = network

    def ID(self) -> str:
        return self._n["name"]        # a Corral network is known by its name

    def Name(self) -> str:
        return self._n["name"]

    def Driver(self) -> str:
        return self._n.get("driver", "bridge")

    def Scope(self) -> str:
        return "local"

    def IPv6(self) -> str:
        return "false"

    def Internal(self) -> str:
        return "true" if self._n.get("internal") else "false"

    def Labels(self) -> str:
        return ""

    def Label(self, name: str) -> str:
        return ""

    def CreatedAt(self) -> str:
        return go_time(self._n.get("created"))

    def Subnet(self) -> str:
        return self._n.get("subnet", "")

    def Gateway(self) -> str:
        return self._n.get("gateway", "")

    def Bridge(self) -> str:
        return self._n.get("bridge", "")


class StatsFields(Fields):
    """`corral stats --format`: docker's StatsContext, plus Corral's Syscalls (calls per second)."""

    kind = "stats"
    HEADERS = {"Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
               "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
               "PIDs": "PIDS", "Syscalls": "SYSCALLS/S"}

    def __init__(self, row: StatsRow, given: str | None = None) -> None:
        self._r = row
        self._given = given

    def Container(self) -> str:
        return self._given or short_id(self._r.id)

    def Name(self) -> str:
        return self._r.name

    def ID(self) -> str:
        return self._r.id

    def CPUPerc(self) -> str:
        value = self._r.cpu_percent
        return "--" if value is None else f"{value:.2f}%"

    def MemUsage(self) -> str:
        limit = self._r.memory_limit_bytes
        return f"{binary_size(self._r.memory_bytes)} / {binary_size(limit) if limit else 'unlimited'}"

    def MemPerc(self) -> str:
        value = self._r.memory_percent
        return "--" if value is None else f"{value:.2f}%"

    def NetIO(self) -> str:
        return f"{human_size(self._r.net_rx_bytes)} / {human_size(self._r.net_tx_bytes)}"

    def BlockIO(self) -> str:
        return "--"     # not measured

    def PIDs(self) -> str:
        pids = self._r.pids
        return "--" if pids is None else str(pids)

    def Syscalls(self) -> str:
        value = self._r.syscalls_per_second
        return "--" if value is None else f"{value:.0f}"


def event_message(event: dict) -> dict:
    """An event as docker's events.Message: `{{.Type}} {{.Action}} {{.Actor.Attributes.name}}`."""
    attributes = {key: value if isinstance(value, str) else go_string(value)
                  for key, value in (event.get("attributes") or {}).items()}
    if event.get("name"):
        attributes["name"] = event["name"]
    when = float(event.get("time") or 0)
    return {"Status": event.get("action", ""), "ID": event.get("id", ""), "From": attributes.get("image", ""),
            "Type": event.get("type", ""), "Action": event.get("action", ""),
            "Actor": {"ID": event.get("id", ""), "Attributes": attributes},
            "Scope": "local", "Time": int(when), "TimeNano": int(when * 1e9)}


class VolumeFields(Fields):
    """`corral volume ls --format`: docker's VolumeContext over a volume as the API lists it
    (docker's shape: Name, Driver, Mountpoint, Labels, Scope, UsageData)."""

    kind = "volume"
    HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
               "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE"}

    def __init__(self, volume: dict) -> None:
        self._v = volume
        self._usage = volume.get("UsageData") or {}

    def Name(self) -> str:
        return self._v.get("Name", "")

    def Driver(self) -> str:
        return self._v.get("Driver", "local")

    def Scope(self) -> str:
        return self._v.get("Scope", "local")

    def Mountpoint(self) -> str:
        return self._v.get("Mountpoint", "")

    def Labels(self) -> str:
        return _labels(self._v.get("Labels") or {})

    def Label(self, name: str) -> str:
        return (self._v.get("Labels") or {}).get(name, "")

    def Links(self) -> str:
        count = self._usage.get("RefCount")
        return "N/A" if count is None or count < 0 else str(count)

    def Size(self) -> str:
        size = self._usage.get("Size")
        return "N/A" if size is None or size < 0 else human_size(size)


class HistoryFields(Fields):
    """`corral history --format`: docker's historyContext over one row of the image's history."""

    kind = "history"
    HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
               "Size": "SIZE", "Comment": "COMMENT"}

    def __init__(self, row: dict, now: float, human: bool = True, truncate: bool = True) -> None:
        self._h = row
        self._now = now
        self._human = human
        self._truncate = truncate

    def ID(self) -> str:
        identifier = self._h.get("Id", "")
        return short_id(identifier) if self._truncate and identifier != "<missing>" else identifier

    def CreatedAt(self) -> str:
        created = self._h.get("Created")
        return "" if created is None else datetime.fromtimestamp(int(created)).astimezone().isoformat()

    def CreatedSince(self) -> str:
        return ago(self._h.get("Created"), self._now) if self._human else self.CreatedAt()

    def CreatedBy(self) -> str:
        text = str(self._h.get("CreatedBy", "")).replace("\t", " ")
        return ellipsis(text, 45) if self._truncate else text

    def Size(self) -> str:
        return human_size(self._h.get("Size")) if self._human else str(self._h.get("Size", 0))

    def Comment(self) -> str:
        return self._h.get("Comment", "")


class DiskUsageFields(Fields):
    """`corral system df --format`: docker's diskUsage row (Type, TotalCount, Active, Size, Reclaimable)."""

    kind = "disk usage"
    HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}

    def __init__(self, row: tuple) -> None:
        self._row = row

    def Type(self) -> str:
        return str(self._row[0])

    def TotalCount(self) -> str:
        return str(self._row[1])

    def Active(self) -> str:
        return str(self._row[2])

    def Size(self) -> str:
        return str(self._row[3])

    def Reclaimable(self) -> str:
        return str(self._row[4])
