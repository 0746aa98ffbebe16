"""The schema of a policy document: msgspec Structs with the bounds of every field.

It is the one description of what a policy file may hold. agent.policy.validate walks it to
report every problem of a document with its path, msgspec builds the typed document from it,
and policies/schema.json is generated from it (`python -m agent.policy.schema > policies/schema.json`;
a test checks that the committed file is the generated one). What a schema cannot say (syscall
names of this architecture, CIDR host bits, selectors that can never match, values whose kind
depends on another field) is checked on top, in agent.policy.semantics, named by `check`.

Each field's `Meta(extra=...)` says how to word its problems:
- `expected`: "expected <this>, got <value>" for a value of the wrong type or out of bounds;
- `message`: a whole message instead, with `{value}` shown short (e.g. "port {value} is not between ...");
- `what`: for a choice (a Literal), "unknown <what> 'x' (expected one of: ...)";
- `empty`: the message for an empty list where at least one item is needed;
- `check`: the name of the semantic check run once the value has the right type
  (`always`: run it on a mapping even when some of its fields have problems).

Every Struct forbids unknown fields: a misspelt key is an error, never silently ignored.
"""
import json
from typing import Annotated, Literal, get_args

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

API_VERSION = "corral/v1"
KIND = "Policy"
Mode = Literal["enforce", "audit"]
SyscallAction = Literal["deny", "kill", "alert"]
ThresholdAction = Literal["alert", "throttle", "freeze", "kill"]
EgressAction = Literal["allow", "deny"]
Protocol = Literal["tcp", "udp"]
KillOrder = Literal["first", "early", "normal", "late", "last"]
SignalName = Literal["memory_bytes", "memory_percent_of_limit", "cpu_percent", "syscalls_per_second",
                     "syscall_errors_per_second", "tcp_connects_per_second", "network_tx_bytes_per_second",
                     "network_rx_bytes_per_second", "pids", "oom_kills", "unhealthy",
                     "memory_growth_bytes_per_second", "memory_pressure_some_percent",
                     "memory_pressure_full_percent", "cpu_pressure_some_percent", "cpu_throttled_percent"]
MODES: tuple[str, ...] = get_args(Mode)
SYSCALL_ACTIONS: tuple[str, ...] = get_args(SyscallAction)
THRESHOLD_ACTIONS: tuple[str, ...] = get_args(ThresholdAction)
EGRESS_ACTIONS: tuple[str, ...] = get_args(EgressAction)
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
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
    "unhealthy": "flag",                # 1 while the health check says unhealthy, else 0
    "memory_growth_bytes_per_second": "bytes",
    "memory_pressure_some_percent": "percent",
    "memory_pressure_full_percent": "percent",
    "cpu_pressure_some_percent": "percent",
    "cpu_throttled_percent": "percent",
}
PER_SYSCALL_SIGNALS = ("syscalls_per_second", "syscall_errors_per_second")
MIN_MEMORY = 4 * 1024 * 1024          # what `corral run --memory` accepts too
MAX_PIDS = 4 * 1024 * 1024            # the kernel's PID_MAX_LIMIT
MAX_HOLD = 7 * 86400.0                # seconds: `for:` up to a week
POLICY_NAME = r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$"
RULE_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$"
LABEL_KEY = r"^[a-zA-Z0-9][a-zA-Z0-9_./-]{0,252}$"
SYSCALL_NAME = r"^[a-z0-9_]+$"
SIZE = r"^\s*\d+(\.\d+)?\s*[kKmMgGtT]?[iI]?[bB]?\s*$"      # agent.units.parse_size reads these
DURATION = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"         # agent.units.parse_duration reads these


Text = Annotated[str, Meta(max_length=4096, extra={"expected": "text"})]
PolicyName = Annotated[str, Meta(pattern=POLICY_NAME, extra={
    "message": "policy name {value}: use lowercase letters, digits, '-' and '.', starting and "
               "ending with a letter or digit"})]
RuleName = Annotated[str, Meta(pattern=RULE_NAME, extra={
    "message": "rule name {value}: use letters, digits, '_', '.' and '-'"})]
Size = Annotated[Annotated[int, Meta(ge=1)] | Annotated[str, Meta(pattern=SIZE, max_length=32)],
                 Meta(description="bytes, or a size like 64Mi, 512m, 1Gi (k/m/g are binary, as in Docker)",
                      extra={"expected": "a size like 64Mi, 512m or 1Gi", "check": "size"})]
Duration = Annotated[Annotated[float, Meta(ge=0, le=MAX_HOLD)] | Annotated[str, Meta(pattern=DURATION, max_length=32)],
                     Meta(description="seconds, or a duration like 500ms, 10s, 5m, 1h (at most a week)",
                          extra={"expected": "a duration like 10s, 500ms or 5m", "check": "duration"})]
SyscallName = Annotated[str, Meta(min_length=1, max_length=64, pattern=SYSCALL_NAME, extra={
    "expected": "a syscall name (lowercase letters, digits and '_')", "check": "syscall"})]
NameGlob = Annotated[str, Meta(min_length=1, max_length=253, extra={
    "expected": "a name glob (a non-empty string)", "check": "name_glob"})]
ImageRef = Annotated[str, Meta(min_length=1, max_length=512, extra={
    "expected": "an image reference (a non-empty string)", "check": "image"})]
LabelKey = Annotated[str, Meta(pattern=LABEL_KEY, extra={"message": "label key {value} is not a valid label name"})]
LabelValue = Annotated[Annotated[str, Meta(max_length=1024)] | int | float | bool,
                       Meta(extra={"expected": "a label value (text)"})]
Port = Annotated[int, Meta(ge=1, le=65535, extra={"message": "port {value} is not between 1 and 65535"})]
Cidr = Annotated[str, Meta(max_length=64, description="an IPv4 or IPv6 network, host bits zero: 10.0.0.0/8, 2001:db8::/32",
                           extra={"expected": "a CIDR like 10.0.0.0/8 or 2001:db8::/32", "check": "cidr"})]
KillSignal = Annotated[Annotated[int, Meta(ge=1, le=64)] | Annotated[str, Meta(max_length=16)],
                   Meta(description="a signal name (TERM, KILL) or number", extra={
                       "expected": "a signal name like KILL or TERM, or its number", "check": "signal"})]
Above = Annotated[Annotated[float, Meta(ge=0, le=1e18)] | Annotated[str, Meta(pattern=SIZE, max_length=32)],
                  Meta(description="a number; for the byte signals also a size like 200Mi",
                       extra={"expected": "a number (or, for the byte signals, a size like 200Mi)"})]


class Metadata(Struct, forbid_unknown_fields=True, frozen=True):
    """The policy's name (unique across the folder) and what it is for."""

    name: PolicyName
    description: Text = ""


class Selector(Struct, forbid_unknown_fields=True, frozen=True):
    """Which containers the policy applies to: every given field must match; globs allowed."""

    names: Annotated[list[NameGlob], Meta(min_length=1, max_length=256, extra={
        "expected": "a list of name globs",
        "empty": "an empty list matches no container; leave the field out to match every name"})] | UnsetType = UNSET
    images: Annotated[list[ImageRef], Meta(min_length=1, max_length=256, extra={
        "expected": "a list of image references",
        "empty": "an empty list matches no container; leave the field out to match every image"})] | UnsetType = UNSET
    labels: Annotated[dict[LabelKey, LabelValue], Meta(max_length=64, extra={
        "expected": "a mapping of label: value"})] | UnsetType = UNSET
    services: Annotated[list[NameGlob], Meta(min_length=1, max_length=256, extra={
        "expected": "a list of service name globs",
        "empty": "an empty list matches no container; leave the field out to match every container"})] | UnsetType = UNSET


class Limits(Struct, forbid_unknown_fields=True, frozen=True):
    """Resource limits for the selected containers (the strictest of all policies wins)."""

    memory: Annotated[Size, Meta(extra={"check": "memory"})] | UnsetType = UNSET
    cpus: Annotated[float, Meta(ge=0.01, le=1024, extra={
        "expected": "a number of CPUs between 0.01 and 1024 like 0.5"})] | UnsetType = UNSET
    pids: Annotated[int, Meta(ge=1, le=MAX_PIDS, extra={
        "expected": f"a whole number of processes between 1 and {MAX_PIDS}"})] | UnsetType = UNSET
    # When the host runs out of memory: first | early | normal | late | last (the processes'
    # oom_score_adj: 1000, 500, 0, -500, -999; agent/policy/kill_order.py).
    killOrder: KillOrder | UnsetType = UNSET


class SyscallRule(Struct, forbid_unknown_fields=True, frozen=True):
    """deny: EPERM through seccomp; kill: a signal to the caller; alert: an event and an alert."""

    names: Annotated[list[SyscallName], Meta(min_length=1, max_length=512, extra={
        "expected": "a list of syscall names", "empty": "expected at least one syscall name"})]
    action: Annotated[SyscallAction, Meta(extra={"what": "syscall action"})]
    signal: KillSignal | UnsetType = UNSET
    name: RuleName | UnsetType = UNSET


class EgressRule(Struct, forbid_unknown_fields=True, frozen=True):
    """Traffic leaving the container to `cidr` (and `ports`/`protocol` when given)."""

    action: Annotated[EgressAction, Meta(extra={"what": "egress action"})]
    cidr: Cidr
    ports: Annotated[list[Port], Meta(min_length=1, max_length=64, extra={
        "expected": "a non-empty list of ports (1-65535)"})] | UnsetType = UNSET
    protocol: Annotated[Protocol, Meta(extra={"what": "protocol"})] | UnsetType = UNSET
    name: RuleName | UnsetType = UNSET


class Egress(Struct, forbid_unknown_fields=True, frozen=True):
    """`default` for traffic no rule matches; the first matching rule decides."""

    default: Annotated[EgressAction, Meta(extra={"what": "egress default"})] = "allow"
    rules: Annotated[list[EgressRule], Meta(max_length=256, extra={
        "expected": "a list of egress rules"})] | UnsetType = UNSET


class Network(Struct, forbid_unknown_fields=True, frozen=True):
    """Network control of the selected containers."""

    egress: Egress | UnsetType = UNSET


class Threshold(Struct, forbid_unknown_fields=True, frozen=True, rename={"for_": "for"}):
    """When `signal` stays above `above` for `for`, take `actions`; resolve when it clears."""

    signal: Annotated[SignalName, Meta(extra={"what": "signal"})]
    above: Above
    syscall: SyscallName | UnsetType = UNSET
    for_: Duration | UnsetType = UNSET
    actions: Annotated[list[Annotated[ThresholdAction, Meta(extra={"what": "action"})]], Meta(
        min_length=1, max_length=4, extra={
            "expected": "a non-empty list of actions (alert, throttle, freeze, kill)"})] | UnsetType = UNSET
    name: RuleName | UnsetType = UNSET


class Spec(Struct, forbid_unknown_fields=True, frozen=True):
    """What the policy does to the containers it selects."""

    selector: Selector | UnsetType = UNSET
    mode: Annotated[Mode, Meta(extra={"what": "mode"})] = "enforce"
    limits: Limits | UnsetType = UNSET
    syscalls: Annotated[list[Annotated[SyscallRule, Meta(extra={"check": "syscall_rule"})]], Meta(max_length=256, extra={
        "expected": "a list of syscall rules"})] | UnsetType = UNSET
    network: Network | UnsetType = UNSET
    thresholds: Annotated[list[Annotated[Threshold, Meta(extra={"check": "threshold"})]], Meta(max_length=256, extra={
        "expected": "a list of thresholds"})] | UnsetType = UNSET


class PolicyDocument(Struct, forbid_unknown_fields=True, frozen=True, rename={"api_version": "apiVersion"}):
    """One YAML document of a policy file. docs/policies.md describes every field. `corral
    policy check` checks more than this schema can (syscall names of this architecture, CIDR
    host bits, selectors that can never match, duplicate names across files)."""

    api_version: Literal["corral/v1"]
    kind: Literal["Policy"]
    metadata: Metadata
    spec: Annotated[Spec, Meta(extra={"check": "rule_names", "always": True})]


def json_schema() -> dict:
    """policies/schema.json: the JSON Schema of a policy document, for editors and CI."""
    schema = msgspec.json.schema(PolicyDocument)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://corral.dev/schemas/policy-v1.json",
            "title": "Corral policy (apiVersion corral/v1, kind Policy)", **schema}


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
