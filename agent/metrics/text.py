"""Prometheus text format 0.0.4, piece by piece: label sets, values, and families a collector
hands over already written as text.

`render()` (agent.metrics.server) writes what `generate_latest()` writes, byte for byte; these
are its pieces, shared with the collector so that text it keeps from one scrape to the next is
the same text a fresh render would give (a unit test compares them).
"""
from __future__ import annotations

from typing import Callable

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


def escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def label_text(labels: dict) -> str:
    """`{a="1",b="2"}`: sorted by name, as generate_latest() writes them."""
    return "{" + ",".join(f'{k}="{escape_value(v)}"' for k, v in sorted(labels.items())) + "}"


def value_text(value: float) -> str:
    """A sample's value as Go writes it (floatToGoString), with the common cases inline."""
    kind_of = type(value)
    if kind_of is int and 0 <= value < 1_000_000:
        return f"{value}.0"
    if kind_of is float and 0.0 <= value < 1e6:
        return repr(value)
    if (kind_of is int or kind_of is float) and 1e6 <= value < 1e16:
        # floatToGoString's exponent form, inline: 268435456 -> 2.68435456e+08.
        text = repr(float(value))
        dot = text.find(".")
        return f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.") + f"e+0{dot - 1}"
    return floatToGoString(value)


class TextMetric(Metric):
    """A family whose samples arrive as text chunks, each with the way to make its samples.

    The collector keeps each container's syscall series as text between scrapes and re-writes
    only the lines whose value moved; `render()` writes the chunks as they are. `samples` is
    made from the chunks on demand, so prometheus_client's own encoder and every reader of
    `collect()` see an ordinary family.
    """

    def __init__(self, name: str, documentation: str, typ: str) -> None:
        self.chunks: list[tuple[str, Callable[[], list[Sample]]]] = []
        super().__init__(name, documentation, typ)

    @property  # type: ignore[override]
    def samples(self) -> list[Sample]:
        return [sample for _text, make in self.chunks for sample in make()]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        # Metric.__init__ sets an empty list; anything else would be lost, so refuse it.
        if value:
            raise ValueError("a TextMetric takes its samples as chunks")

    def add_chunk(self, text: str, make: Callable[[], list[Sample]]) -> None:
        self.chunks.append((text, make))

    @property
    def text(self) -> str:
        return "".join(text for text, _make in self.chunks)
