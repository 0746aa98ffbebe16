"""`--format` and `--filter` of ps, images, inspect and events through the real CLI, API
client, server and filter module, over the in-memory runtime (tests/unit/fake_runtime.py)."""
from __future__ import annotations

import json
import time

import pytest

from agent.cli.format_fields import (
    ContainerFields,
    DiskUsageFields,
    HistoryFields,
    NetworkFields,
    StatsFields,
    VolumeFields,
    binary_size,
    event_message,
    go_time,
)
from agent.cli.main import main
from agent.cli.stats_rows import StatsRow
from agent.cli.template_output import HeaderFields, render_rows
from tests.unit.fake_runtime import FakeDaemon, make_image


@pytest.fixture
def daemon():
    with FakeDaemon() as running:
        running.runtime.images.append(make_image("alpine", "3.19", digit="e"))
        yield running


def corral(daemon, *argv) -> int:
    return main(["--host", daemon.host, *argv])


@pytest.fixture
def three(daemon, capsys):
    """web (running, tier=web), db (running, tier=db), old (exited 3, no labels)."""
    corral(daemon, "run", "-d", "--name", "web", "-l", "tier=web", "-l", "com.example.team=blue", "busybox")
    corral(daemon, "run", "-d", "--name", "db", "-l", "tier=db", "busybox")
    corral(daemon, "run", "-d", "--name", "old", "busybox", "false")
    daemon.runtime.finish("old", 3)
    for name, age in (("web", 30), ("db", 20), ("old", 10)):   # web oldest, old newest
        daemon.runtime.get(name).created_at = time.time() - age
    capsys.readouterr()
    return daemon


def out(daemon, capsys, *argv) -> str:
    code = corral(daemon, *argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_ps_template_and_table(three, capsys):
    assert out(three, capsys, "ps", "--format", "{{.Names}}") == "db\nweb\n"     # newest first
    assert out(three, capsys, "ps", "-a", "--format", "table {{.Names}}\\t{{.Status}}") == (
        "NAMES     STATUS\n"
        "old       Exited (3) Less than a second ago\n"
        "db        Up Less than a second\n"
        "web       Up Less than a second\n")
    assert out(three, capsys, "ps", "--format", '{{.Names}} {{.Label "tier"}} [{{.Label "none"}}] {{.Labels}}') == \
        "db db [] tier=db\nweb web [] com.example.team=blue,tier=web\n"
    assert out(three, capsys, "ps", "--format", 'table {{.ID}}\t{{.Label "com.example.team"}}').splitlines()[0] == \
        "CONTAINER ID   team"
    row = json.loads(out(three, capsys, "ps", "-n", "1", "--format", "{{json .}}"))
    assert row["Names"] == "old" and row["State"] == "exited" and row["Command"] == '"false"'
    assert sorted(row) == sorted(ContainerFields.HEADERS)
    web = three.runtime.get("web")
    assert out(three, capsys, "ps", "-l", "--no-trunc", "-q") == three.runtime.get("old").id + "\n"
    assert out(three, capsys, "ps", "--filter", "name=^web$", "--format", "{{.ID}} {{.Image}} {{.State}}") == \
        f"{web.id[:12]} busybox running\n"
    assert out(three, capsys, "ps", "--format", "table") == out(three, capsys, "ps")


def test_ps_filters_run_in_the_daemon(three, capsys):
    def names(*flags):
        return out(three, capsys, "ps", *flags, "--format", "{{.Names}}").split()
    assert names("--filter", "label=tier") == ["db", "web"]
    assert names("-f", "label=tier=web") == ["web"]
    assert names("-f", "label=tier=web", "-f", "label=com.example.team=blue") == ["web"]   # labels: all of them
    assert names("-f", "label=tier=web", "-f", "label=com.example.team=red") == []
    assert names("-f", "status=exited") == ["old"]                 # a status filter implies -a
    assert names("-f", "status=exited", "-f", "status=running") == ["old", "db", "web"]
    assert names("-a", "-f", "exited=3") == ["old"] and names("-a", "-f", "exited=0") == []
    assert names("-f", "name=we") == ["web"]
    assert names("-a", "-f", "ancestor=busybox:latest") == ["old", "db", "web"]
    assert names("-a", "-f", "ancestor=alpine") == []
    assert names("-a", "-f", "since=web") == ["old", "db"] and names("-a", "-f", "before=db") == ["web"]
    assert names("-f", "id=" + three.runtime.get("db").id[:6]) == ["db"]
    assert names("-f", "network=bridge", "-f", "health=none") == ["db", "web"]


@pytest.mark.parametrize("flags, message", [
    (["--filter", "colour=red"], "invalid filter 'colour' for containers (known: ancestor, before,"),
    (["-f", "status=sleeping"], "invalid filter 'status=sleeping': expected one of created, restarting"),
    (["-f", "exited=x"], "invalid filter 'exited=x': expected an exit code"),
    (["-f", "label"], "--filter 'label': expected KEY=VALUE"),
    (["-f", "before=ghost"], "before=ghost: no such container"),
    (["--format", "{{.Names"], "template: 1:1: unclosed action"),
    (["--format", "{{.Nope}}"], "can't evaluate field Nope in type container"),
    (["--format", "{{.Label}}"], "wrong number of args for Label: want 1 got 0"),
])
def test_ps_refuses_bad_filters_and_templates(three, capsys, flags, message):
    assert corral(three, "ps", *flags) == 125
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_inspect_format(three, capsys):
    assert out(three, capsys, "inspect", "-f", "{{.State.Running}} {{.Name}}", "web", "old") == "true web\nfalse old\n"
    assert out(three, capsys, "inspect", "--format", "{{json .Labels}}|{{.Missing}}", "web") == \
        '{"tier":"web","com.example.team":"blue"}|<no value>\n'
    assert json.loads(out(three, capsys, "inspect", "-f", "json", "web"))[0]["Name"] == "web"
    assert corral(three, "inspect", "-f", "{{.Name.X}}", "web") == 125
    assert "can't evaluate field X in type string" in capsys.readouterr().err


def test_images_format_and_filters(daemon, capsys):
    assert out(daemon, capsys, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}") == \
        f"alpine:3.19 {'e' * 12}\nbusybox:latest {'b' * 12}\n"      # newest first
    table = out(daemon, capsys, "images", "--format", "table {{.Repository}}\\t{{.Size}}\\t{{.Digest}}")
    assert table.splitlines() == ["REPOSITORY   SIZE      DIGEST", "alpine       4.26MB    <none>",
                                  "busybox      4.26MB    <none>"]
    assert out(daemon, capsys, "images", "-f", "reference=alp*", "-q") == "e" * 12 + "\n"
    assert out(daemon, capsys, "images", "-f", "reference=*:3.*", "--format", "{{.Repository}}") == "alpine\n"
    assert out(daemon, capsys, "images", "-f", "dangling=true", "-q") == ""
    assert out(daemon, capsys, "images", "-f", "label=maintainer", "-q") == ""
    assert out(daemon, capsys, "image", "ls", "--no-trunc", "-q", "-f", "reference=busybox") == \
        "sha256:" + "b" * 64 + "\n"
    assert corral(daemon, "images", "-f", "status=x") == 125
    assert "invalid filter 'status' for images" in capsys.readouterr().err


def test_events_format_and_filters(three, capsys):
    three.runtime.events.emit(__import__("agent.events", fromlist=["Event"]).Event("image", "import", "sha256:x",
                                                                                      "alpine:3.19"))
    lines = out(three, capsys, "events", "--filter", "event=start", "--format",
                "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}").splitlines()
    assert lines == ["container start web", "container start db", "container start old"]
    assert out(three, capsys, "events", "--filter", "type=image", "--format", "{{.Action}} {{.Actor.ID}}") == \
        "import sha256:x\n"
    assert out(three, capsys, "events", "--filter", "container=db", "--filter", "event=die", "--format",
               "{{.Status}}") == ""
    assert out(three, capsys, "events", "--filter", "container=old", "--filter", "event=die",
               "--format", "{{json .Actor.Attributes}}") == '{"exit_code":"3","name":"old"}\n'
    by_label = out(three, capsys, "events", "--filter", "label=tier=web", "--format", "{{.Action}}").split()
    assert by_label == ["create", "start"]
    assert corral(three, "events", "--filter", "colour=red") == 125
    assert "invalid filter 'colour' for events" in capsys.readouterr().err


def test_the_api_takes_docker_filters_json(three):
    status, _, body = three.raw("GET", '/v1/containers?all=1&filters={"label":{"tier=db":true}}')
    assert status == 200 and [c["name"] for c in json.loads(body)] == ["db"]
    status, _, body = three.raw("GET", "/v1/containers?filters=[1]")
    assert status == 400 and json.loads(body)["field"] == "filters"
    status, _, body = three.raw("GET", '/v1/images?filters={"colour":["x"]}')
    assert status == 400 and json.loads(body)["field"] == "filters.colour"


def test_other_verbs_fields():
    network = NetworkFields({"name": "backend", "driver": "bridge", "subnet": "10.214.5.0/24",
                             "gateway": "10.214.5.1", "bridge": "corral-backend", "internal": True, "created": 0})
    assert render_rows("table {{.Name}}\\t{{.Driver}}\\t{{.Internal}}\\t{{.Subnet}}", [network],
                       NetworkFields.HEADERS) == "NAME      DRIVER    INTERNAL   SUBNET\nbackend   bridge    true       10.214.5.0/24\n"
    assert [network.ID(), network.Scope(), network.IPv6(), network.Labels(), network.Label("x"), network.Gateway(),
            network.Bridge()] == ["backend", "local", "false", "", "", "10.214.5.1", "corral-backend"]
    assert network.CreatedAt().startswith("1970-01-01 ")
    row = StatsRow(id="ab" * 32, name="web", cpu_percent=1.234, memory_bytes=2 * 1024 * 1024,
                   memory_limit_bytes=None, memory_percent=None, net_rx_bytes=1500, net_tx_bytes=None, pids=3,
                   syscalls_per_second=12.4, syscall_errors_per_second=0.0)
    stats = StatsFields(row, "web")
    assert render_rows("{{.Container}} {{.ID}} {{.CPUPerc}} {{.MemUsage}} {{.MemPerc}} {{.NetIO}} {{.PIDs}} "
                       "{{.BlockIO}} {{.Syscalls}}", [stats], StatsFields.HEADERS) == \
        f"web {'ab' * 32} 1.23% 2MiB / unlimited -- 1.5kB / - 3 -- 12\n"
    assert StatsFields(row).Container() == "ab" * 6
    assert binary_size(None) == "--" and binary_size(1536) == "1.5KiB" and go_time(None) == ""
    message = event_message({"type": "container", "action": "die", "id": "c1", "name": "web", "time": 1.5,
                             "attributes": {"exitCode": 0, "oomKilled": False, "image": "busybox"}})
    assert message["Actor"]["Attributes"] == {"exitCode": "0", "oomKilled": "false", "image": "busybox", "name": "web"}
    assert (message["From"], message["Time"], message["TimeNano"], message["Scope"]) == ("busybox", 1, 1500000000,
                                                                                        "local")


def test_table_headers_as_docker_makes_them():
    """docker 28: `docker context ls --format 'table {{.Name}}\\t{{.Current}}'` prints NAME, then
    `<no value>` for the column whose field has no title; docker's SubHeaderContext titles
    `.Label "com.example.min_cpu-count"` `min cpu count`."""
    headers = HeaderFields({"Name": "NAME"})
    assert render_rows("table {{.Name}}\\t{{.Current}}\\t{{.Label \"com.example.min_cpu-count\"}}", [],
                       headers.to_json()) == "NAME      <no value>   min cpu count\n"
    assert render_rows("table {{upper .Name}}|{{json .Name}}|{{.Name | lower}}", [], {"Name": "Name"}) == \
        "Name|Name|Name\n"
    assert render_rows("{{.}}", [], {}) == ""


def test_version_and_info_templates(daemon, capsys):
    assert out(daemon, capsys, "version", "--format", "{{.Server.ApiVersion}} {{.Client.ApiVersion}} {{.Client.Os}}") \
        == "v1 v1 linux\n"
    assert out(daemon, capsys, "version", "-f", "{{json .Server.Version}}") == json.dumps(__import__("agent").__version__) + "\n"
    assert out(daemon, capsys, "info", "--format", "{{.Missing}}") == "<no value>\n"
    assert main(["--host", "unix:///tmp/corral-test-nobody-here/corral.sock", "version", "-f",
                 "{{.Client.Version}} {{.Server}}"]) == 125
    captured = capsys.readouterr()
    assert captured.out.endswith(" <no value>\n") and "cannot reach" in captured.err


def test_volume_fields():
    volumes = [VolumeFields({"Name": "data", "Driver": "local", "Mountpoint": "/var/lib/corral/volumes/data",
                             "Labels": {"backup": "yes", "a.b.tier": "db"}, "Scope": "local",
                             "UsageData": {"RefCount": 2, "Size": 4_261_000}}),
               VolumeFields({"Name": "cache", "UsageData": {"RefCount": -1, "Size": -1}})]
    assert render_rows('table {{.Name}}\\t{{.Driver}}\\t{{.Links}}\\t{{.Size}}\\t{{.Label "a.b.tier"}}', volumes,
                       VolumeFields.HEADERS) == ("VOLUME NAME   DRIVER    LINKS     SIZE      tier\n"
                                                 "data          local     2         4.26MB    db\n"
                                                 "cache         local     N/A       N/A       \n")
    assert [volumes[0].Scope(), volumes[0].Mountpoint(), volumes[0].Labels()] == \
        ["local", "/var/lib/corral/volumes/data", "a.b.tier=db,backup=yes"]


def test_history_fields():
    now = time.time()
    rows = [HistoryFields({"Id": "sha256:" + "f" * 64, "Created": now - 120, "CreatedBy": "/bin/sh -c\t" + "x" * 60,
                           "Size": 4_261_000, "Comment": "made"}, now),
            HistoryFields({"Id": "<missing>", "Created": 0, "CreatedBy": "ADD rootfs", "Size": 12, "Comment": ""},
                          now, human=False, truncate=False)]
    assert render_rows("{{.ID}}|{{.CreatedSince}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}", rows, HistoryFields.HEADERS) \
        .splitlines() == [f"{'f' * 12}|2 minutes ago|/bin/sh -c {'x' * 33}…|4.26MB|made",
                          f"<missing>|{rows[1].CreatedAt()}|ADD rootfs|12|"]
    assert rows[1].CreatedAt().startswith("1970-01-01T")
    assert render_rows("table {{.ID}}\\t{{.CreatedAt}}", [], HistoryFields.HEADERS) == "IMAGE     CREATED AT\n"


def test_disk_usage_fields():
    rows = [DiskUsageFields(("Images", 2, 1, "1.32MB", "1.05MB (79%)"))]
    assert render_rows("table {{.Type}}\\t{{.TotalCount}}\\t{{.Active}}\\t{{.Size}}\\t{{.Reclaimable}}", rows,
                       DiskUsageFields.HEADERS) == ("TYPE      TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"
                                                    "Images    2         1         1.32MB    1.05MB (79%)\n")
