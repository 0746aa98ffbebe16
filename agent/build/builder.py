"""The build: a Dockerfile's stages run in order into images of the store.

Each stage starts from its FROM (an image of the store, pulled when missing, another stage, or
`scratch`) and keeps its state in memory: layers, config, history and the ARG values in scope.
Config instructions change the state; RUN, COPY and ADD each make one layer, looked up first in
the build cache: a key of the state before the step (layers and config), the instruction as
expanded, and what it reads (the digest of the copied files; the ARG values a RUN sees). A hit
reuses the stored layer and says `CACHED`; `--no-cache` skips the lookups.

RUN needs an image to start a container from, so the state before it is recorded as an untagged
image; those records are removed when the build ends. Each stage other than the target is kept as
an untagged image (docker's dangling stage images), so its layers, and the cache that names them,
survive until `image prune`.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.build import config_steps, dockerfile, files, run_step
from agent.build.context import Context
from agent.build.dockerfile import Instruction, Stage
from agent.errors import CorralError, InvalidArgument, NotFound
from agent.images.commit import history_of, layer_from_tree
from agent.images.config_blob import host_architecture, new_config_blob, timestamp
from agent.images.model import UNTAGGED, Image, ImageConfig, image_id, parse_reference
from agent.images.records import read_json, write_json
from agent.images.store import ImageStore
from agent.runtime.model import ContainerSpec
from agent.runtime.service import RuntimeService

Emit = Callable[[dict[str, Any]], None]
Pull = Callable[[str, Emit], Image]
MAX_DOCKERFILE = 1 << 20


@dataclass(frozen=True)
class BuildOptions:
    context: Path
    dockerfile: Path | None = None          # default: CONTEXT/Dockerfile
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network: str = ""                       # "": the builder's default (bridge, or none without networking)
    platform: str = ""
    pull: bool = False                      # pull FROM images even when the store has them


@dataclass
class _State:
    layers: list[str]
    config: ImageConfig
    history: list[dict[str, Any]]
    size: int
    args: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return image_id(self.layers, self.config)


class Builder:
    """The daemon's one builder: `corral build` (agent/api/build_endpoints.py) and the Docker
    API's `POST /build` (agent/dockerapi/build.py) both build through it."""

    def __init__(self, store: ImageStore, runtime: RuntimeService, pull: Pull | None, cache_dir: Path,
                 network: str = "bridge") -> None:
        self.store = store
        self.runtime = runtime
        self.pull = pull
        self.cache_dir = cache_dir
        self.network = network
        cache_dir.mkdir(parents=True, exist_ok=True)

    def build(self, options: BuildOptions, emit: Emit) -> Image:
        run = _Run(self, options, emit)
        try:
            return run.build()
        finally:
            run.clean_up()


class _Run:
    """One build's working state."""

    def __init__(self, builder: Builder, options: BuildOptions, emit: Emit) -> None:
        self.b = builder
        self.options = options
        self.emit = emit
        self.id = uuid.uuid4().hex[:12]
        self.context = Context(options.context)
        self.intermediate: list[str] = []
        self.kept: set[str] = set()          # the images the build made on purpose
        self.step = 0
        self.steps = 0
        self.network = options.network or builder.network
        path = options.dockerfile or (self.context.root / "Dockerfile")
        self.path = str(path)
        if options.platform and options.platform not in (f"linux/{host_architecture()}", "linux"):
            raise InvalidArgument(f"platform {options.platform!r}: this host builds only linux/{host_architecture()}")
        for tag in options.tags:
            parse_reference(tag)

    def say(self, text: str, **marks: Any) -> None:
        """A line of the build's output; `marks` say what it is (a step, a cached step, a layer)
        for a display that draws more than lines (agent/cli/build_progress.py)."""
        self.emit({"stream": text, **marks})

    def build(self) -> Image:
        try:
            size = os.path.getsize(self.path)
            if size > MAX_DOCKERFILE:
                raise InvalidArgument(f"{self.path}: {size} bytes is too large for a Dockerfile")
            text = Path(self.path).read_text(errors="replace")
        except FileNotFoundError:
            raise NotFound(f"Dockerfile {self.path!r} not found", hint="give one with -f FILE") from None
        parsed = dockerfile.parse(text, os.path.basename(self.path))
        target = parsed.stage(self.options.target.lower()) if self.options.target else len(parsed.stages) - 1
        global_args = self._global_args(parsed.global_args)
        needed = self._needed(parsed.stages, target, global_args)
        self.steps = sum(1 + len(stage.instructions) for stage in parsed.stages if stage.index in needed)
        results: dict[int, _State] = {}
        for stage in parsed.stages:
            if stage.index in needed:
                results[stage.index] = self._stage(stage, parsed.stages, results, global_args)
        final = results[target]
        if self.options.labels:
            final.config = _with_labels(final.config, self.options.labels)
        image = self._record(final, *(parse_reference(self.options.tags[0]) if self.options.tags
                                      else (UNTAGGED, UNTAGGED)))
        for tag in self.options.tags[1:]:
            self.b.store.tag(image.id, tag)
        self.kept.add(image.id)
        for index, state in results.items():
            if index != target:
                self.kept.add(self._record(state, UNTAGGED, UNTAGGED).id)
        self.say(f"Successfully built {image.short_id}\n", built=image.id)
        for tag in self.options.tags:
            self.say(f"Successfully tagged {tag}\n", tagged=tag)
        return image

    def _global_args(self, items: list[Instruction]) -> dict[str, str]:
        values: dict[str, str] = {}
        for item in items:
            name, value = _arg(item, values, f"{self.path}:{item.line}: ARG")
            if name in self.options.build_args:
                value = self.options.build_args[name]
            if value is not None:
                values[name] = value
        return values

    def _needed(self, stages: list[Stage], target: int, global_args: dict[str, str]) -> set[int]:
        """The target and every stage it reads from (FROM a stage, COPY --from), transitively."""
        names = {stage.name: stage.index for stage in stages}
        needed, pending = set(), [target]
        while pending:
            index = pending.pop()
            if index in needed:
                continue
            needed.add(index)
            stage = stages[index]
            base = dockerfile.expand(stage.base, global_args, "FROM").lower()
            refs = [base] + [item.flags["from"].lower() for item in stage.instructions if "from" in item.flags]
            pending += [names[ref] for ref in refs if ref in names and names[ref] < index]
            pending += [int(ref) for ref in refs if ref.isdigit() and int(ref) < index]
        return needed

    # -- a stage

    def _stage(self, stage: Stage, stages: list[Stage], results: dict[int, _State],
               global_args: dict[str, str]) -> _State:
        base = dockerfile.expand(stage.base, global_args, f"{self.path}:{stage.line}: FROM")
        label = stage.name if not stage.name.isdigit() else (f"stage-{stage.index}" if len(stages) > 1 else "")
        count = 1 + len(stage.instructions)
        self._announce(f"FROM {base}" + (f" AS {stage.name}" if not stage.name.isdigit() else ""), label, 1, count)
        state = self._from(base, stages, results, stage)
        for number, item in enumerate(stage.instructions, start=2):
            where = f"{self.path}:{item.line}: {item.keyword}"
            self._announce(item.original, label, number, count)
            if item.keyword == "ARG":
                name, value = _arg(item, {**global_args, **state.args}, where)
                value = self.options.build_args.get(name, value if value is not None else global_args.get(name))
                if value is not None:
                    state.args[name] = value
            elif item.keyword == "ONBUILD":
                raise InvalidArgument(f"{where}: ONBUILD is not supported by corral build")
            elif item.keyword in config_steps.CONFIG_KEYWORDS:
                state.config = config_steps.apply(state.config, item, self._values(state), where)
                state.history.append({"created": timestamp(time.time()), "created_by": item.original,
                                      "empty_layer": True})
            elif item.keyword == "RUN":
                self._layer_step(state, item, self._run_key(state, item),
                                 functools.partial(self._run, state, item, where))
            else:                                           # COPY, ADD
                self._copy(state, item, results, stages, where)
        return state

    def _from(self, base: str, stages: list[Stage], results: dict[int, _State], stage: Stage) -> _State:
        for earlier in stages[:stage.index]:
            if earlier.name == base.lower():
                previous = results[earlier.index]
                return _State(list(previous.layers), previous.config, list(previous.history), previous.size)
        if base == "scratch":
            return _State([], ImageConfig(env=[]), [], 0)
        image = None
        if not self.options.pull or self.b.pull is None:
            try:
                image = self.b.store.get(base)
            except NotFound:
                if self.b.pull is None:
                    raise
        if image is None:
            assert self.b.pull is not None
            self.say(f"Pulling {base}\n")
            image = self.b.pull(base, lambda event: None)
        return _State(list(image.layers), image.config, history_of(self.b.store, image), image.size)

    def _announce(self, text: str, stage: str, number: int, count: int) -> None:
        self.step += 1
        self.say(f"Step {self.step}/{self.steps} : {text}\n",
                 step={"stage": stage, "number": number, "count": count, "text": text})

    def _values(self, state: _State) -> dict[str, str]:
        env = dict(item.split("=", 1) for item in state.config.env)
        return {**state.args, **env}

    # -- layers

    def _layer_step(self, state: _State, item: Instruction, key: str, make: Callable[[], tuple[str, int]]) -> None:
        cached = None if self.options.no_cache else self._cached(key)
        if cached is not None:
            self.say(" ---> CACHED\n", cached=True)
            layer, size = cached
        else:
            layer, size = make()
            write_json(self.b.cache_dir / f"{key.split(':')[1]}.json", {"layer": layer, "size": size})
        state.layers.append(layer)
        state.size += size
        state.history.append({"created": timestamp(time.time()), "created_by": item.original})
        self.say(f" ---> {layer.split(':')[1][:12]}\n", layer=layer)

    def _cached(self, key: str) -> tuple[str, int] | None:
        path = self.b.cache_dir / f"{key.split(':')[1]}.json"
        if not path.is_file():
            return None
        try:
            record = read_json(path, "build cache entry")
            layer, size = str(record["layer"]), int(record["size"])
        except (CorralError, KeyError, TypeError, ValueError):
            return None
        return (layer, size) if self.b.store.has_layer(layer) else None

    def _key(self, state: _State, *parts: Any) -> str:
        return "sha256:" + hashlib.sha256(json.dumps([state.id, *parts], sort_keys=True).encode()).hexdigest()

    def _run_key(self, state: _State, item: Instruction) -> str:
        return self._key(state, item.original, sorted(state.args.items()), self.network)

    def _run(self, state: _State, item: Instruction, where: str) -> tuple[str, int]:
        parent = self._record(state, UNTAGGED, UNTAGGED)
        self.intermediate.append(parent.id)
        command = item.exec_form or [*(state.config.shell or ["/bin/sh", "-c"]), item.arguments]
        spec = ContainerSpec.checked(
            image=parent.id, command=command, entrypoint=[], env=[f"{k}={v}" for k, v in state.args.items()],
            workdir=state.config.workdir, user=state.config.user or None, network=self.network,
            labels={"corral.build": self.id, "corral.build.step": str(self.step)},
            # The layer is the upper directory as is: under a user namespace its files would
            # belong to the range's host ids, not the image's (docs/security.md, limits).
            userns="host")
        layers = self.b.store.layer_paths(parent)
        container, upper = run_step.run_command(self.b.runtime, spec, layers, self.say, where)
        try:
            epoch = self.options.build_args.get("SOURCE_DATE_EPOCH", "")
            if epoch.isdigit():
                run_step.clamp_times(upper, int(epoch))
            return layer_from_tree(self.b.store, upper, where)
        finally:
            self.b.runtime.remove(container, force=True)

    def _copy(self, state: _State, item: Instruction, results: dict[int, _State], stages: list[Stage],
              where: str) -> None:
        words = dockerfile.json_list(item.arguments) or item.arguments.split()
        words = [dockerfile.expand(word, self._values(state), where) for word in words]
        if len(words) < 2:
            raise InvalidArgument(f"{where}: needs at least one source and a destination")
        *sources, destination = words
        if any("://" in source for source in sources):
            raise InvalidArgument(f"{where}: sources from URLs are not supported",
                                  hint="download in a RUN step (wget, curl) or into the context first")
        if not destination.startswith("/"):
            destination = posixpath.join(state.config.workdir, destination)
        into_dir = destination.endswith("/") or len(sources) > 1
        chmod = item.flags.get("chmod")
        mode = int(chmod, 8) if chmod and all(c in "01234567" for c in chmod) else None
        if chmod and mode is None:
            raise InvalidArgument(f"{where}: --chmod must be octal, like 755, got {chmod!r}")
        layer_paths = [self.b.store.layer_dir(d) for d in state.layers]
        owner = files.resolve_owner(item.flags["chown"], layer_paths, where) if "chown" in item.flags else None
        with tempfile.TemporaryDirectory(dir=self.b.store.dir / "tmp", prefix="build-") as work:
            scratch = Path(work)
            source_layers = self._from_layers(item, results, stages, where)
            if source_layers is None:
                found = self.context.sources(sources, where)
                roots = [(self.context.root / path, path) for path in found]
                key = self._key(state, item.original, self.context.digest(found), owner, mode)
                self._layer_step(state, item, key, lambda: self._tree(
                    files.TreeBuilder(scratch / "tree", layer_paths, owner, mode, skip=self._ignored),
                    roots, destination, into_dir, item.keyword == "ADD", where))
                return
            with files.merged_root(source_layers, scratch) as root:
                roots = [(files.resolve_in_root(root, source, where), source) for source in sources]
                for path, source in roots:
                    if not os.path.lexists(path):
                        raise InvalidArgument(f"{where}: {source!r} is not in --from={item.flags['from']}")
                digest = hashlib.sha256(json.dumps([d.name for d in source_layers] + sources).encode()).hexdigest()
                key = self._key(state, item.original, digest, owner, mode)
                self._layer_step(state, item, key, lambda: self._tree(
                    files.TreeBuilder(scratch / "tree", layer_paths, owner, mode), roots, destination, into_dir,
                    False, where))

    def _from_layers(self, item: Instruction, results: dict[int, _State], stages: list[Stage],
                     where: str) -> list[Path] | None:
        source = item.flags.get("from")
        if source is None:
            return None
        for stage in stages:
            if source.lower() in (stage.name, str(stage.index)) and stage.index in results:
                return [self.b.store.layer_dir(d) for d in results[stage.index].layers]
        try:
            return self.b.store.layer_paths(self.b.store.get(source))
        except NotFound:
            raise InvalidArgument(f"{where}: --from={source}: no such stage or image") from None

    def _ignored(self, path: Path) -> bool:
        return self.context.ignored(os.path.relpath(path, self.context.root))

    def _tree(self, maker: files.TreeBuilder, roots: list[tuple[Path, str]], destination: str, into_dir: bool,
              add: bool, where: str) -> tuple[str, int]:
        tree = maker.tree
        tree.mkdir()
        os.utime(tree, (0, 0))
        for path, source in roots:
            is_dir = path.is_dir() and not path.is_symlink()
            if add and files.is_archive(path):
                maker.extract(path, destination, f"{where} {source}")
            elif is_dir:
                maker.copy(path, destination)
            else:
                name = posixpath.basename(source.rstrip("/"))
                maker.copy(path, posixpath.join(destination, name) if into_dir else destination)
        return layer_from_tree(self.b.store, tree, where)

    # -- records

    def _record(self, state: _State, name: str, tag: str) -> Image:
        now = time.time()
        blob = new_config_blob(state.config, state.layers, now, state.history)
        image = Image(id=state.id, name=name, tag=tag, layers=list(state.layers), config=state.config,
                      created=now, size=state.size, config_digest=self.b.store.save_blob(blob))
        return self.b.store.add_image(image)

    def clean_up(self) -> None:
        """Forget the images recorded only to start RUN containers from."""
        kept = self.kept | {image.id for image in self.b.store.list() if image.tagged}
        for image_id_ in dict.fromkeys(self.intermediate):
            if image_id_ in kept:
                continue
            try:
                self.b.store.remove(image_id_, in_use_by=[])
            except CorralError:
                pass


def _arg(item: Instruction, values: dict[str, str], where: str) -> tuple[str, str | None]:
    name, has_default, default = item.arguments.partition("=")
    name = name.strip()
    if not name or " " in name:
        raise InvalidArgument(f"{where}: expected NAME[=DEFAULT], got {item.arguments!r}")
    return name, dockerfile.expand(default, values, where) if has_default else None


def _with_labels(config: ImageConfig, labels: dict[str, str]) -> ImageConfig:
    import dataclasses
    return dataclasses.replace(config, labels={**config.labels, **labels})

