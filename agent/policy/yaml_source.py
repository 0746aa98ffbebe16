"""YAML documents with the line and column of every node, so a problem found in a policy
can be reported as `file:line:col: path: message`.

PyYAML's composer keeps a start mark on each node; we compose, then turn nodes into plain
Python values ourselves while recording where each path came from. Values are built with
PyYAML's safe constructors (so `10` is an int and `yes` a bool, as users expect), and a key
given twice in one mapping is reported rather than silently overridden.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple  # of str keys and int indexes, e.g. ("spec", "syscalls", 0, "names", 1)


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
        reported at the mapping that lacks it). `key=True` prefers the key's position, which is
        where an unknown field should be pointed at."""
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
    """A file that is not YAML at all; its position is where the parser gave up."""

    file: str
    mark: Mark
    message: str


def _mark(node_mark) -> Mark:
    return Mark(node_mark.line + 1, node_mark.column + 1)


def load_documents(text: str, file: str) -> tuple[list[SourceDocument], SyntaxProblem | None]:
    """Every non-empty document of `text`; stops at the first syntax error and reports it
    (documents before it are still returned, so their problems are reported too)."""
    loader = yaml.SafeLoader(text)
    documents: list[SourceDocument] = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = SourceDocument(file=file, index=index, data=None, start=_mark(node.start_mark))
            doc.data = _convert(loader, node, (), doc)
            documents.append(doc)
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _mark(mark) if mark else Mark(1, 1)
        message = " ".join(part for part in (exc.context, exc.problem) if part) or "not valid YAML"
        return documents, SyntaxProblem(file, where, f"not valid YAML: {message}")
    except yaml.YAMLError as exc:
        return documents, SyntaxProblem(file, Mark(1, 1), f"not valid YAML: {exc}")
    finally:
        loader.dispose()
    return documents, None


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path, doc: SourceDocument) -> Any:
    doc.values[path] = _mark(node.start_mark)
    if isinstance(node, yaml.MappingNode):
        result: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                # `<<: *anchor` merges are a YAML feature policies do not need; treat as a key
                # so it is reported as unknown rather than half-supported.
                key = "<<"
            else:
                key = _convert(loader, key_node, path + ("<key>",), doc)
                doc.values.pop(path + ("<key>",), None)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                key = str(key)
            child = path + (key,)
            if key in result:
                doc.duplicates.append((child, _mark(key_node.start_mark)))
            doc.keys[child] = _mark(key_node.start_mark)
            result[key] = _convert(loader, value_node, child, doc)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, path + (i,), doc) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
