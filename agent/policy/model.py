"""The policy model: frozen dataclasses built from a YAML document by one path, `parse_policy`,
which rejects unknown keys and collects every error with the path of the field at fault.

A document looks like:

    apiVersion: corral/v1
    kind: Policy
    metadata: {name: web-guardrails}
    spec: {selector: ..., mode: enforce, limits: ..., syscalls: [...], network: ..., thresholds: [...]}

docs/policies.md is the reference of every field. Values are checked here as far as they can
be without the host (sizes, CIDRs, ports, durations, signals, actions, selectors that can
never match); syscall names are checked against the host's table when the caller passes one.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from agent.errors import InvalidArgument, PolicyError
from agent.units import parse_duration, parse_signal, parse_size

API_VERSION = "corral/v1"
KIND = "Policy"
MODES = ("enforce", "audit")
SYSCALL_ACTIONS = ("deny", "kill", "alert")
THRESHOLD_ACTIONS = ("alert", "throttle", "freeze", "kill")
EGRESS_ACTIONS = ("allow", "deny")
PROTOCOLS = ("tcp", "udp")
# signal -> kind of its value; the kind says how `above:` is read (docs/policies.md, "Signals").
SIGNALS = {
    "memory_bytes": "bytes",
    "memory_percent_of_limit": "percent",
    "cpu_percent": "percent_cpu",
    "syscalls_per_second": "rate",
    "syscall_errors_per_second": "rate",
    "tcp_connects_per_second": "rate",
    "network_tx_bytes_per_second": "bytes",
    "network_rx_bytes_per_second": "bytes",
    "pids": "count",
    "oom_kills": "count",
}
PER_SYSCALL_SIGNALS = ("syscalls_per_second", "syscall_errors_per_second")
MIN_MEMORY = 4 * 1024 * 1024          # what `corral run --memory` accepts too
POLICY_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
RULE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
# What a container-name glob may contain: the characters of a name plus glob syntax.
_NAME_GLOB = re.compile(r"^[a-zA-Z0-9_.*?\[\]!-]+$")
# An image reference with globs: [host[:port]/]path[:tag][@algo:hex]; path components are
# lowercase, tags up to 128 word characters, dots and dashes.
_IMAGE_COMPONENT = re.compile(r"^[a-z0-9*?\[\]]+(?:(?:[._]|__|-+)[a-z0-9*?\[\]]+)*$")
_IMAGE_HOST = re.compile(r"^[a-zA-Z0-9*?.-]+(?::[0-9*?]+)?$")
_IMAGE_TAG = re.compile(r"^[a-zA-Z0-9_*?\[\]][a-zA-Z0-9_.*?\[\]-]{0,127}$")
_IMAGE_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9*?]+$")
_LABEL_KEY = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_./-]{0,252}$")

Path = tuple


@dataclass(frozen=True)
class FieldError:
    """One problem in a document: the path of the field (keys and indexes) and what is wrong."""

    path: Path
    message: str
    at_key: bool = False          # point at the key (unknown or duplicate field), not its value

    @property
    def dotted(self) -> str:
        return format_path(self.path)


def format_path(path: Path) -> str:
    """("spec", "syscalls", 0, "names") -> "spec.syscalls[0].names"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(document)"


# --- the objects --------------------------------------------------------------------------

def normalise_image(reference: str) -> str:
    """docker.io/library/busybox -> busybox; a reference without tag or digest gets :latest."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/"):
        if reference.startswith(prefix):
            reference = reference[len(prefix):]
            break
    last = reference.rsplit("/", 1)[-1]
    if "@" not in reference and ":" not in last:
        reference += ":latest"
    return reference


@dataclass(frozen=True)
class Selector:
    """Which containers a policy applies to: every given field must match; globs allowed.
    A field left out matches every container; a policy without a selector applies to all."""

    names: tuple[str, ...] | None = None
    images: tuple[str, ...] | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def matches(self, name: str, image: str, labels: dict[str, str] | None = None) -> bool:
        labels = labels or {}
        if self.names is not None and not any(fnmatch.fnmatchcase(name, g) for g in self.names):
            return False
        if self.images is not None and not any(_image_matches(image, g) for g in self.images):
            return False
        return all(k in labels and fnmatch.fnmatchcase(str(labels[k]), v) for k, v in self.labels.items())

    def to_dict(self) -> dict:
        data: dict[str, Any] = {}
        if self.names is not None:
            data["names"] = list(self.names)
        if self.images is not None:
            data["images"] = list(self.images)
        if self.labels:
            data["labels"] = dict(self.labels)
        return data


def _image_matches(image: str, pattern: str) -> bool:
    """A pattern without a tag matches every tag of that repository ("busybox" ~ "busybox:1.36")."""
    image = normalise_image(image)
    last = pattern.rsplit("/", 1)[-1]
    if "@" not in pattern and ":" not in last:
        return fnmatch.fnmatchcase(image.split("@")[0].rsplit(":", 1)[0], _strip_hub(pattern))
    return fnmatch.fnmatchcase(image, normalise_image(pattern))


def _strip_hub(pattern: str) -> str:
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/"):
        if pattern.startswith(prefix):
            return pattern[len(prefix):]
    return pattern


@dataclass(frozen=True)
class Limits:
    """Resource limits a policy sets; None leaves that resource to other policies or the spec."""

    memory: int | None = None          # bytes
    cpus: float | None = None
    pids: int | None = None

    def is_empty(self) -> bool:
        return self.memory is None and self.cpus is None and self.pids is None


@dataclass(frozen=True)
class SyscallRule:
    """deny: EPERM via seccomp (containers started under the policy); kill: the probe sends
    `signal` to the caller, live; alert: an event and an alert, nothing else."""

    names: tuple[str, ...]
    action: str
    signal: int = 9
    name: str | None = None
    index: int = 0

    @property
    def rule_id(self) -> str:
        return self.name or f"syscalls[{self.index}]"


@dataclass(frozen=True)
class EgressRule:
    """Traffic leaving the container to `cidr` (and `ports`/`protocol` when given)."""

    action: str
    cidr: str
    ports: tuple[int, ...] = ()        # empty: every port
    protocol: str | None = None        # None: tcp and udp
    name: str | None = None
    index: int = 0

    @property
    def rule_id(self) -> str:
        return self.name or f"egress[{self.index}]"

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)


@dataclass(frozen=True)
class NetworkPolicy:
    """Egress control: `default` for traffic no rule matches; the first matching rule decides."""

    egress_default: str = "allow"
    egress: tuple[EgressRule, ...] = ()


@dataclass(frozen=True)
class Threshold:
    """When `signal` stays above `above` for `for_seconds`, take `actions`; resolve when it clears."""

    signal: str
    above: float
    for_seconds: float = 0.0
    actions: tuple[str, ...] = ("alert",)
    syscall: str | None = None         # only for the per-syscall signals
    name: str | None = None
    index: int = 0

    @property
    def rule_id(self) -> str:
        return self.name or f"thresholds[{self.index}]"


@dataclass(frozen=True)
class Policy:
    name: str
    mode: str = "enforce"
    selector: Selector = field(default_factory=Selector)
    limits: Limits = field(default_factory=Limits)
    syscalls: tuple[SyscallRule, ...] = ()
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    thresholds: tuple[Threshold, ...] = ()
    description: str = ""
    source: str = field(default="", compare=False)      # file it was loaded from

    @property
    def enforcing(self) -> bool:
        return self.mode == "enforce"

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["selector"] = self.selector.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "",
                  syscall_known: Callable[[str], bool] | None = None) -> "Policy":
        """The policy of one document, or PolicyError listing every problem."""
        policy, errors = parse_policy(data, source=source, syscall_known=syscall_known)
        if errors:
            where = f"{source}: " if source else ""
            raise PolicyError("; ".join(f"{where}{e.dotted}: {e.message}" for e in errors))
        assert policy is not None
        return policy


# --- building them ------------------------------------------------------------------------

class _Errors(list):
    def add(self, path: Path, message: str, *, at_key: bool = False) -> None:
        self.append(FieldError(tuple(path), message, at_key))


def _mapping(data: Any, path: Path, errors: _Errors, known: tuple[str, ...],
             required: tuple[str, ...] = ()) -> dict | None:
    """`data` as a mapping with only `known` keys; unknown and missing ones are reported."""
    if not isinstance(data, dict):
        errors.add(path, f"expected a mapping with {', '.join(known)}, got {_describe(data)}")
        return None
    for key in data:
        if key not in known:
            errors.add(path + (key,), f"unknown field {key!r} (known: {', '.join(known)})", at_key=True)
    for key in required:
        if key not in data:
            errors.add(path, f"missing required field {key!r}")
    return data


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{value!r}"


def _choice(value: Any, path: Path, errors: _Errors, choices: tuple[str, ...], what: str) -> str | None:
    if value in choices:
        return value
    errors.add(path, f"unknown {what} {value!r} (expected one of: {', '.join(choices)})")
    return None


def _string_list(value: Any, path: Path, errors: _Errors, what: str) -> list[str] | None:
    if not isinstance(value, list):
        errors.add(path, f"expected a list of {what}, got {_describe(value)}")
        return None
    good = []
    for i, item in enumerate(value):
        if isinstance(item, str) and item:
            good.append(item)
        else:
            errors.add(path + (i,), f"expected a {what[:-1]} (a non-empty string), got {_describe(item)}")
    return good


def _rule_name(data: dict, path: Path, errors: _Errors, seen: set[str]) -> str | None:
    name = data.get("name")
    if name is None:
        return None
    if not isinstance(name, str) or not RULE_NAME.match(name):
        errors.add(path + ("name",), f"rule name {name!r}: use letters, digits, '_', '.' and '-'")
        return None
    if name in seen:
        errors.add(path + ("name",), f"rule name {name!r} is used twice in this policy")
    seen.add(name)
    return name


def parse_policy(data: Any, *, source: str = "",
                 syscall_known: Callable[[str], bool] | None = None) -> tuple[Policy | None, list[FieldError]]:
    """The one path from a document to a Policy: (policy, []) or (None, every error found)."""
    errors = _Errors()
    top = _mapping(data, (), errors, ("apiVersion", "kind", "metadata", "spec"),
                   ("apiVersion", "kind", "metadata", "spec"))
    if top is None:
        return None, list(errors)
    if "apiVersion" in top and top["apiVersion"] != API_VERSION:
        errors.add(("apiVersion",), f"expected {API_VERSION!r}, got {top['apiVersion']!r}")
    if "kind" in top and top["kind"] != KIND:
        errors.add(("kind",), f"expected {KIND!r}, got {top['kind']!r}")
    name, description = _metadata(top.get("metadata"), errors)
    spec = _mapping(top.get("spec", {}), ("spec",), errors,
                    ("selector", "mode", "limits", "syscalls", "network", "thresholds")) or {}
    path = ("spec",)
    for key in ("selector", "limits", "syscalls", "network", "thresholds"):
        if key in spec and spec[key] is None:
            # `limits:` with nothing after it is what a truncated write leaves: never "no limits".
            errors.add(path + (key,), "expected a value, got nothing (leave the field out instead)")
    mode = _choice(spec.get("mode", "enforce"), path + ("mode",), errors, MODES, "mode")
    selector = _selector(spec.get("selector"), path + ("selector",), errors)
    limits = _limits(spec.get("limits"), path + ("limits",), errors)
    rule_names: set[str] = set()
    syscalls = _syscalls(spec.get("syscalls"), path + ("syscalls",), errors, syscall_known, rule_names)
    network = _network(spec.get("network"), path + ("network",), errors, rule_names)
    thresholds = _thresholds(spec.get("thresholds"), path + ("thresholds",), errors, syscall_known,
                             rule_names)
    if errors:
        return None, list(errors)
    return Policy(name=name, mode=mode, selector=selector, limits=limits, syscalls=syscalls,
                  network=network, thresholds=thresholds, description=description,
                  source=source), []


def _metadata(data: Any, errors: _Errors) -> tuple[str, str]:
    meta = _mapping(data, ("metadata",), errors, ("name", "description"), ("name",)) or {}
    name = meta.get("name", "")
    if "name" in meta and (not isinstance(name, str) or not POLICY_NAME.match(name)):
        errors.add(("metadata", "name"), f"policy name {name!r}: use lowercase letters, digits, '-' "
                                         "and '.', starting and ending with a letter or digit")
    description = meta.get("description", "")
    if not isinstance(description, str):
        errors.add(("metadata", "description"), f"expected text, got {_describe(description)}")
        description = ""
    return str(name), description


def _selector(data: Any, path: Path, errors: _Errors) -> Selector:
    if data is None:
        return Selector()
    sel = _mapping(data, path, errors, ("names", "images", "labels"))
    if sel is None:
        return Selector()
    names = images = None
    if "names" in sel:
        names = _string_list(sel["names"], path + ("names",), errors, "name globs")
        if names is not None and not sel["names"]:
            errors.add(path + ("names",), "an empty list matches no container; leave the field out "
                                          "to match every name")
        for i, glob in enumerate(names or []):
            problem = _name_glob_problem(glob)
            if problem:
                errors.add(path + ("names", i), f"{glob!r} can never match a container name: {problem}")
    if "images" in sel:
        images = _string_list(sel["images"], path + ("images",), errors, "image references")
        if images is not None and not sel["images"]:
            errors.add(path + ("images",), "an empty list matches no container; leave the field out "
                                           "to match every image")
        for i, ref in enumerate(images or []):
            problem = _image_problem(ref)
            if problem:
                errors.add(path + ("images", i), f"{ref!r} is not an image reference: {problem}")
    labels: dict[str, str] = {}
    if "labels" in sel:
        raw = sel["labels"]
        if not isinstance(raw, dict):
            errors.add(path + ("labels",), f"expected a mapping of label: value, got {_describe(raw)}")
        else:
            for key, value in raw.items():
                if not isinstance(key, str) or not _LABEL_KEY.match(key):
                    errors.add(path + ("labels", key), f"label key {key!r} is not a valid label name",
                               at_key=True)
                elif isinstance(value, (dict, list)) or value is None:
                    errors.add(path + ("labels", key), f"expected a label value (text), got {_describe(value)}")
                else:
                    # `tier: 1` in YAML is an int; labels are text.
                    labels[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return Selector(names=tuple(names) if names is not None else None,
                    images=tuple(images) if images is not None else None, labels=labels)


def _name_glob_problem(glob: str) -> str | None:
    if not _NAME_GLOB.match(glob):
        bad = sorted({c for c in glob if not re.match(r"[a-zA-Z0-9_.*?\[\]!-]", c)})
        return f"names hold only letters, digits, '_', '.' and '-' (found {' '.join(map(repr, bad))})"
    if glob[0] in "_.-":
        return "names start with a letter or digit"
    if glob.count("[") != glob.count("]"):
        return "unbalanced '[' ']'"
    return None


def _image_problem(ref: str) -> str | None:
    if any(c.isspace() for c in ref):
        return "it contains whitespace"
    if ref.count("@") > 1:
        return "more than one '@'"
    rest, _, digest = ref.partition("@")
    if digest and not _IMAGE_DIGEST.match(digest):
        return f"digest {digest!r} should look like sha256:<hex>"
    parts = rest.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        host, parts = parts[0], parts[1:]
        if not _IMAGE_HOST.match(host):
            return f"registry {host!r} is not a host[:port]"
    last, colon, tag = parts[-1].partition(":")
    parts[-1] = last
    if colon and not _IMAGE_TAG.match(tag):
        return f"tag {tag!r}: up to 128 letters, digits, '_', '.' and '-'"
    for part in parts:
        if not part:
            return "an empty path component"
        if not _IMAGE_COMPONENT.match(part):
            return f"path component {part!r}: lowercase letters and digits separated by '.', '_' or '-'"
    return None


def _limits(data: Any, path: Path, errors: _Errors) -> Limits:
    if data is None:
        return Limits()
    lim = _mapping(data, path, errors, ("memory", "cpus", "pids"))
    if lim is None:
        return Limits()
    memory = cpus = pids = None
    if "memory" in lim:
        memory = _size(lim["memory"], path + ("memory",), errors)
        if memory is not None and memory < MIN_MEMORY:
            errors.add(path + ("memory",), f"{lim['memory']!r} is below the minimum of 4Mi")
            memory = None
    if "cpus" in lim:
        value = lim["cpus"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.01 <= value <= 1024:
            errors.add(path + ("cpus",), f"expected a number of CPUs between 0.01 and 1024 like 0.5, got {value!r}")
        else:
            cpus = float(value)
    if "pids" in lim:
        value = lim["pids"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            errors.add(path + ("pids",), f"expected a whole number of processes of at least 1, got {value!r}")
        else:
            pids = value
    return Limits(memory=memory, cpus=cpus, pids=pids)


def _size(value: Any, path: Path, errors: _Errors) -> int | None:
    try:
        return parse_size(value, field="size")
    except InvalidArgument:
        errors.add(path, f"expected a size like 64Mi, 512m or 1Gi, got {value!r}")
        return None


def _syscall_names(value: Any, path: Path, errors: _Errors,
                   syscall_known: Callable[[str], bool] | None) -> tuple[str, ...]:
    names = _string_list(value, path, errors, "syscall names") or []
    if isinstance(value, list) and not value:
        errors.add(path, "expected at least one syscall name")
    if syscall_known is not None:
        for i, name in enumerate(names):
            if not syscall_known(name):
                errors.add(path + (i,), f"unknown syscall {name!r} on this architecture"
                           + _suggestion(name, syscall_known))
    return tuple(names)


def _suggestion(name: str, syscall_known: Callable[[str], bool]) -> str:
    table = getattr(syscall_known, "names", None)
    if not table:
        return ""
    import difflib
    close = difflib.get_close_matches(name, table, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _list_of_mappings(data: Any, path: Path, errors: _Errors, what: str) -> list:
    if data is None:
        return []
    if not isinstance(data, list):
        errors.add(path, f"expected a list of {what}, got {_describe(data)}")
        return []
    return data


def _syscalls(data: Any, path: Path, errors: _Errors, syscall_known, seen: set[str]) -> tuple[SyscallRule, ...]:
    rules = []
    for i, item in enumerate(_list_of_mappings(data, path, errors, "syscall rules")):
        here = path + (i,)
        rule = _mapping(item, here, errors, ("names", "action", "signal", "name"), ("names", "action"))
        if rule is None:
            continue
        names = _syscall_names(rule.get("names", []), here + ("names",), errors, syscall_known)
        action = _choice(rule.get("action"), here + ("action",), errors, SYSCALL_ACTIONS, "syscall action") \
            if "action" in rule else None
        signal = 9
        if "signal" in rule:
            if action != "kill":
                errors.add(here + ("signal",), "signal is only used by action: kill")
            try:
                signal = parse_signal(rule["signal"], field="signal")
            except InvalidArgument as exc:
                errors.add(here + ("signal",), exc.message.split(": ", 1)[-1])
        name = _rule_name(rule, here, errors, seen)
        if action:
            rules.append(SyscallRule(names=names, action=action, signal=signal, name=name, index=i))
    return tuple(rules)


def _network(data: Any, path: Path, errors: _Errors, seen: set[str]) -> NetworkPolicy:
    if data is None:
        return NetworkPolicy()
    net = _mapping(data, path, errors, ("egress",))
    if not net or net.get("egress") is None:
        return NetworkPolicy()
    path = path + ("egress",)
    egress = _mapping(net["egress"], path, errors, ("default", "rules"))
    if egress is None:
        return NetworkPolicy()
    default = _choice(egress.get("default", "allow"), path + ("default",), errors, EGRESS_ACTIONS,
                      "egress default") or "allow"
    rules = []
    for i, item in enumerate(_list_of_mappings(egress.get("rules"), path + ("rules",), errors, "egress rules")):
        here = path + ("rules", i)
        rule = _mapping(item, here, errors, ("action", "cidr", "ports", "protocol", "name"), ("action", "cidr"))
        if rule is None:
            continue
        action = _choice(rule.get("action"), here + ("action",), errors, EGRESS_ACTIONS, "egress action") \
            if "action" in rule else None
        cidr = _cidr(rule.get("cidr"), here + ("cidr",), errors) if "cidr" in rule else None
        ports = _ports(rule.get("ports"), here + ("ports",), errors) if "ports" in rule else ()
        protocol = None
        if "protocol" in rule:
            protocol = _choice(rule["protocol"], here + ("protocol",), errors, PROTOCOLS, "protocol")
        elif ports:
            protocol = None   # ports without a protocol mean tcp and udp
        name = _rule_name(rule, here, errors, seen)
        if action and cidr:
            rules.append(EgressRule(action=action, cidr=cidr, ports=ports, protocol=protocol, name=name, index=i))
    return NetworkPolicy(egress_default=default, egress=tuple(rules))


def _cidr(value: Any, path: Path, errors: _Errors) -> str | None:
    if not isinstance(value, str):
        errors.add(path, f"expected a CIDR like 10.0.0.0/8 or 2001:db8::/32, got {_describe(value)}")
        return None
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        try:
            fixed = ipaddress.ip_network(value, strict=False)
        except ValueError:
            errors.add(path, f"{value!r} is not a CIDR like 10.0.0.0/8 or 2001:db8::/32 ({exc})")
            return None
        errors.add(path, f"{value!r} has host bits set; did you mean {fixed}?")
        return None


def _ports(value: Any, path: Path, errors: _Errors) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        errors.add(path, f"expected a non-empty list of ports (1-65535), got {_describe(value)}")
        return ()
    ports = []
    for i, port in enumerate(value):
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            errors.add(path + (i,), f"port {port!r} is not between 1 and 65535")
        else:
            ports.append(port)
    return tuple(sorted(set(ports)))


def _thresholds(data: Any, path: Path, errors: _Errors, syscall_known, seen: set[str]) -> tuple[Threshold, ...]:
    result = []
    for i, item in enumerate(_list_of_mappings(data, path, errors, "thresholds")):
        here = path + (i,)
        rule = _mapping(item, here, errors, ("signal", "syscall", "above", "for", "actions", "name"),
                        ("signal", "above"))
        if rule is None:
            continue
        signal = _choice(rule.get("signal"), here + ("signal",), errors, tuple(SIGNALS), "signal") \
            if "signal" in rule else None
        syscall = None
        if "syscall" in rule:
            raw = rule["syscall"]
            if signal is not None and signal not in PER_SYSCALL_SIGNALS:
                errors.add(here + ("syscall",), f"syscall only applies to {' and '.join(PER_SYSCALL_SIGNALS)}")
            if not isinstance(raw, str) or not raw:
                errors.add(here + ("syscall",), f"expected a syscall name, got {_describe(raw)}")
            elif syscall_known is not None and not syscall_known(raw):
                errors.add(here + ("syscall",), f"unknown syscall {raw!r} on this architecture"
                           + _suggestion(raw, syscall_known))
            else:
                syscall = raw
        above = _above(rule.get("above"), signal, here + ("above",), errors) if "above" in rule else None
        hold = 0.0
        if "for" in rule:
            try:
                hold = parse_duration(rule["for"], field="for")
            except InvalidArgument:
                errors.add(here + ("for",), f"expected a duration like 10s, 500ms or 5m, got {rule['for']!r}")
        actions: tuple[str, ...] = ("alert",)
        if "actions" in rule:
            raw = rule["actions"]
            if not isinstance(raw, list) or not raw:
                errors.add(here + ("actions",), f"expected a non-empty list of actions "
                                                f"({', '.join(THRESHOLD_ACTIONS)}), got {_describe(raw)}")
            else:
                checked = [_choice(a, here + ("actions", j), errors, THRESHOLD_ACTIONS, "action")
                           for j, a in enumerate(raw)]
                actions = tuple(dict.fromkeys(a for a in checked if a))
        name = _rule_name(rule, here, errors, seen)
        if signal and above is not None:
            result.append(Threshold(signal=signal, above=above, for_seconds=hold, actions=actions,
                                    syscall=syscall, name=name, index=i))
    return tuple(result)


def _above(value: Any, signal: str | None, path: Path, errors: _Errors) -> float | None:
    kind = SIGNALS.get(signal or "", "rate")
    if kind == "bytes" and isinstance(value, str):
        size = _size(value, path, errors)
        return float(size) if size is not None else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = "a size like 200Mi or a number" if kind == "bytes" else "a number"
        errors.add(path, f"expected {hint}, got {_describe(value)}")
        return None
    if value < 0:
        errors.add(path, f"must not be negative, got {value!r}")
        return None
    if kind == "percent" and value > 100:
        errors.add(path, f"a percentage of the limit is at most 100, got {value!r}")
        return None
    return float(value)
