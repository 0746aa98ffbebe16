"""Policy files read safely: bytes checked, YAML composed under limits, every node located.

A policy folder is written by people and tools the daemon trusts less than itself, and the
daemon reads it as root, so one file must never cost it more than a bounded amount of time and
memory. `decode` refuses what is not text (too big, empty, binary, not UTF-8); `load_documents`
composes YAML from libyaml's event stream ourselves instead of with PyYAML's composer, because
the composer has no limits: it recurses per nesting level (100,000 `[` crash it), follows a
recursive anchor into a self-containing list, and lets a few lines of nested aliases (a
"billion laughs") expand to billions of nodes. Here:

- nesting deeper than `max_depth`, more than `max_documents` documents or `max_aliases`
  aliases, and more than `max_nodes` nodes *counting every alias as the nodes it repeats* are
  refused at the event that crosses the limit, so a bomb is refused after a few hundred events;
- an alias to an anchor still open (a recursive anchor) is refused;
- tags other than YAML's plain scalar types, maps and sequences are refused (no `!!python/...`,
  `!!set`), and a mapping key must be a scalar;
- the whole composition runs against a deadline (`time_budget`).

Scalars are built with PyYAML's safe constructors (so `10` is an int and `yes` a bool, as users
expect), and a key given twice in one mapping is reported rather than silently overridden.
Every problem carries a 1-based line and column, so it prints as `file:line:col: path: message`.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

Path = tuple  # of str keys and int indexes, e.g. ("spec", "syscalls", 0, "names", 1)

MiB = 1024 * 1024
_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary")}
_MERGE = _YAML + "merge"
_CLOCK_EVERY = 256      # events between two looks at the clock


@dataclass(frozen=True)
class YamlLimits:
    """What one policy file may cost. The defaults are far above any real policy file (the
    shipped ones are under 2 KiB and 200 nodes) and far below what would hurt the daemon."""

    max_bytes: int = MiB
    max_depth: int = 32            # a policy document is 7 levels deep at most
    max_documents: int = 100
    max_aliases: int = 100
    max_nodes: int = 20_000        # scalars, mappings and sequences, aliases expanded
    time_budget: float = 1.0       # seconds for decoding and composing one file

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError(f"policy file size limit {self.max_bytes!r}: must be at least 1 byte")


DEFAULT_LIMITS = YamlLimits()


@dataclass(frozen=True)
class Mark:
    """A 1-based position in a file."""

    line: int
    col: int


@dataclass
class SourceDocument:
    """One YAML document of a file: its plain data and where each path starts."""

    file: str
    index: int                                   # 0-based position of the document in the file
    data: Any
    start: Mark
    values: dict[Path, Mark] = field(default_factory=dict)   # path -> where its value starts
    keys: dict[Path, Mark] = field(default_factory=dict)     # path -> where its key starts
    duplicates: list[tuple[Path, Mark]] = field(default_factory=list)

    def where(self, path: Path, *, key: bool = False) -> Mark:
        """The position of `path`, or of its nearest ancestor that exists (a missing field is
        reported at the mapping that lacks it, a field inside an alias at the alias). `key=True`
        prefers the key's position, which is where an unknown field should be pointed at."""
        path = tuple(path)
        while path:
            if key and path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), self.start)


@dataclass(frozen=True)
class SyntaxProblem:
    """A file that is not (acceptable) YAML; its position is where reading gave up."""

    file: str
    mark: Mark
    message: str


def decode(raw: bytes, file: str, limits: YamlLimits = DEFAULT_LIMITS) -> str | SyntaxProblem:
    """The text of a policy file, or why it is not one. Empty counts as a problem: an editor
    that truncates before writing, or a full disk, must not silently remove a policy."""
    if len(raw) > limits.max_bytes:
        return SyntaxProblem(file, Mark(1, 1), f"file is larger than the limit of {_bytes(limits.max_bytes)} "
                                               "(--policy-max-size)")
    nul = raw.find(b"\0")
    if nul >= 0:
        return SyntaxProblem(file, _offset_mark(raw, nul), "binary file (NUL byte), not a YAML policy")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return SyntaxProblem(file, _offset_mark(raw, exc.start),
                             f"not UTF-8 text (byte 0x{raw[exc.start]:02x})")
    if not text.strip():
        return SyntaxProblem(file, Mark(1, 1), "empty file; the previous version stays in force "
                                               "(delete the file to remove its policies)")
    return text


def _offset_mark(data: bytes | str, offset: int) -> Mark:
    """The line and column of an offset (in bytes of `data` or characters of text)."""
    newline: Any = b"\n" if isinstance(data, bytes) else "\n"
    return Mark(data.count(newline, 0, offset) + 1, offset - (data.rfind(newline, 0, offset) + 1) + 1)


def _bytes(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n} bytes"


def _mark(node_mark) -> Mark:
    return Mark(node_mark.line + 1, node_mark.column + 1)


class _Refused(Exception):
    def __init__(self, mark: Mark, message: str) -> None:
        super().__init__(message)
        self.mark, self.message = mark, message


def load_documents(text: str, file: str, limits: YamlLimits = DEFAULT_LIMITS,
                   clock: Callable[[], float] = time.monotonic) -> tuple[list[SourceDocument], SyntaxProblem | None]:
    """Every non-empty document of `text`; stops at the first syntax error or limit crossed
    and reports it (documents before it are still returned, so their problems show too)."""
    if len(text) > limits.max_bytes:     # callers handing text (replay) skip `decode`
        return [], SyntaxProblem(file, Mark(1, 1), f"text is larger than the limit of {_bytes(limits.max_bytes)}")
    loader = yaml.CSafeLoader(text) if yaml.__with_libyaml__ else yaml.SafeLoader(text)
    composer = _Composer(file, limits, clock() + limits.time_budget, clock)
    try:
        composer.run(loader)
    except _Refused as exc:
        return composer.documents, SyntaxProblem(file, exc.mark, exc.message)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _mark(mark) if mark else Mark(1, 1)
        message = " ".join(" ".join(part.split()) for part in (exc.context, exc.problem) if part) or "not valid YAML"
        return composer.documents, SyntaxProblem(file, where, f"not valid YAML: {message}")
    except yaml.reader.ReaderError as exc:       # a character YAML refuses; `position` counts characters
        return composer.documents, SyntaxProblem(file, _offset_mark(text, exc.position),
                                                 f"not valid YAML: {exc.reason} (character 0x{exc.character:02x})"
                                                 if isinstance(exc.character, int) else f"not valid YAML: {exc.reason}")
    except yaml.YAMLError as exc:
        return composer.documents, SyntaxProblem(file, Mark(1, 1), "not valid YAML: " + " ".join(str(exc).split()))
    finally:
        loader.dispose()
    return composer.documents, None


@dataclass
class _Open:
    """A mapping or sequence being composed."""

    value: dict | list
    path: Path
    anchor: str | None
    weight: int = 1
    key: Any = None
    has_key: bool = False          # a mapping's key was read, its value is next
    key_mark: Mark | None = None


_NO_VALUE = object()


class _Composer:
    """Builds plain Python values from parser events with an explicit stack (no recursion)."""

    def __init__(self, file: str, limits: YamlLimits, deadline: float, clock: Callable[[], float]) -> None:
        self.file, self.limits, self.deadline, self.clock = file, limits, deadline, clock
        self.documents: list[SourceDocument] = []
        self.nodes = 0
        self.aliases = 0
        self.count = 0
        self.resolver = Resolver()
        self.constructor = SafeConstructor()

    def run(self, loader) -> None:
        events = 0
        doc: SourceDocument | None = None
        anchors: dict[str, tuple[Any, int]] = {}
        stack: list[_Open] = []
        open_anchors: set[str] = set()
        while loader.check_event():
            event = loader.get_event()
            events += 1
            if events % _CLOCK_EVERY == 0 and self.clock() > self.deadline:
                raise _Refused(_mark(event.start_mark), f"took longer than the {self.limits.time_budget:g}s "
                                                        "budget for one policy file to read")
            here = _mark(event.start_mark)
            if isinstance(event, yaml.DocumentStartEvent):
                self.count += 1
                if self.count > self.limits.max_documents:
                    raise _Refused(here, f"more than {self.limits.max_documents} documents in one file")
                doc = SourceDocument(self.file, len(self.documents), None, here)
                anchors = {}          # anchors do not cross documents
                continue
            if isinstance(event, yaml.DocumentEndEvent):
                assert doc is not None
                if doc.data is not None:
                    doc.index = len(self.documents)
                    self.documents.append(doc)
                doc = None
                continue
            if doc is None:
                continue              # stream start and end
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                done = stack.pop()
                if done.anchor is not None:
                    anchors[done.anchor] = (done.value, done.weight)
                    open_anchors.discard(done.anchor)
                if stack:
                    self._placed(stack[-1], done.weight)
                continue
            if isinstance(event, yaml.AliasEvent):
                if event.anchor in open_anchors:
                    raise _Refused(here, f"recursive anchor: alias *{event.anchor} inside its own anchor")
                if event.anchor not in anchors:
                    raise _Refused(here, f"alias *{event.anchor} names no anchor defined before it")
                self.aliases += 1
                if self.aliases > self.limits.max_aliases:
                    raise _Refused(here, f"more than {self.limits.max_aliases} aliases in one file")
                value, weight = anchors[event.anchor]
                self._count(here, weight, alias=True)
                self._place(doc, stack, value, weight, here, container=isinstance(value, (dict, list)))
                continue
            if isinstance(event, yaml.ScalarEvent):
                self._count(here, 1)
                value = self._scalar(event, here)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1)
                self._place(doc, stack, value, 1, here, container=False)
                continue
            # a mapping or sequence starts
            if len(stack) >= self.limits.max_depth:
                raise _Refused(here, f"nested deeper than {self.limits.max_depth} levels")
            is_map = isinstance(event, yaml.MappingStartEvent)
            if event.tag not in (None, "!", _YAML + ("map" if is_map else "seq")):
                raise _Refused(here, f"tag {event.tag} is not allowed in a policy")
            self._count(here, 1)
            container: dict | list = {} if is_map else []
            path = self._place(doc, stack, container, 0, here, container=True)
            stack.append(_Open(container, path, event.anchor))
            if event.anchor is not None:
                open_anchors.add(event.anchor)

    def _count(self, here: Mark, weight: int, alias: bool = False) -> None:
        self.nodes += weight
        if self.nodes > self.limits.max_nodes:
            why = " (aliases repeat what they name: is this a \"billion laughs\"?)" if alias else ""
            raise _Refused(here, f"more than {self.limits.max_nodes} YAML nodes in one file{why}")

    def _scalar(self, event, here: Mark) -> Any:
        tag = event.tag
        if tag in (None, "!"):
            tag = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _MERGE:
            # `<<: *anchor` merges are a YAML feature policies do not need: a plain key, so it is
            # reported as an unknown field rather than half-supported.
            return "<<"
        if tag not in _SCALAR_TAGS:
            raise _Refused(here, f"tag {tag} is not allowed in a policy")
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return self.constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise _Refused(here, f"not a valid {tag.rsplit(':', 1)[-1]}: {event.value[:40]!r} ({exc})") from None

    def _place(self, doc: SourceDocument, stack: list[_Open], value: Any, weight: int, here: Mark,
               *, container: bool) -> Path:
        """Put a node where it belongs (root, list item, mapping key or value); its path."""
        if not stack:
            doc.data = value
            doc.values[()] = here
            return ()
        parent = stack[-1]
        if isinstance(parent.value, list):
            path = parent.path + (len(parent.value),)
            parent.value.append(value)
        elif not parent.has_key:
            if container:
                raise _Refused(here, "a mapping key must be a scalar (text or a number), not a "
                                     "mapping or a list")
            parent.key, parent.has_key, parent.key_mark = value, True, here
            self._placed(parent, weight)
            return parent.path
        else:
            key = parent.key
            path = parent.path + (key,)
            if key in parent.value:
                doc.duplicates.append((path, parent.key_mark or here))
            assert isinstance(parent.value, dict)
            parent.value[key] = value
            doc.keys[path] = parent.key_mark or here
            parent.has_key = False
        doc.values[path] = here
        if weight:
            self._placed(parent, weight)
        return path

    @staticmethod
    def _placed(parent: _Open, weight: int) -> None:
        parent.weight += weight
