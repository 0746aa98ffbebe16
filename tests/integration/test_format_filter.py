"""docker's --format and --filter through a real daemon and real containers: `inspect -f`,
`ps --format 'table ...'`, `ps --filter`, `images --format`, `events --filter`, `stats --format`,
`network ls --format`."""
from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.privileged


@pytest.fixture
def clean(daemon):
    yield daemon
    daemon.remove_all()


def lines(daemon, *argv) -> list[str]:
    return daemon.cli(*argv).stdout.decode().splitlines()


def test_inspect_format_reads_the_document(clean):
    cid = clean.out("run", "-d", "--name", "fmt-web", "-l", "tier=web", "-e", "MODE=prod", "busybox", "sleep", "60")
    assert clean.out("inspect", "-f", "{{.State.Running}}", "fmt-web") == "true"
    assert clean.out("inspect", "--format", "{{.Id}} {{.Name}} {{.State.Pid}}", cid[:12]).split()[:2] == \
        [cid, "fmt-web"]
    assert int(clean.out("inspect", "-f", "{{.State.Pid}}", "fmt-web")) > 1
    assert clean.out("inspect", "-f", "{{json .Config.Labels}}", "fmt-web") == '{"tier":"web"}'
    assert clean.out("inspect", "-f", '{{index .Config.Labels "tier"}}|{{.Missing}}', "fmt-web") == "web|<no value>"
    assert "MODE=prod" in clean.out("inspect", "-f", '{{range .Config.Env}}{{println .}}{{end}}', "fmt-web").split()
    address = clean.out("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "fmt-web")
    assert address.count(".") == 3
    clean.cli("kill", "fmt-web")
    clean.cli("wait", "fmt-web")
    assert clean.out("inspect", "-f", "{{.State.Running}} {{.State.ExitCode}} {{.State.Status}}", "fmt-web") == \
        "false 137 exited"
    bad = clean.cli("inspect", "-f", "{{.State.Running", "fmt-web", check=False)
    assert bad.returncode == 125 and b"template: 1:1: unclosed action" in bad.stderr and bad.stdout == b""


def test_ps_format_table_and_filters(clean):
    clean.cli("run", "-d", "--name", "fmt-a", "-l", "app=shop", "-l", "tier=web", "busybox", "sleep", "60")
    clean.cli("run", "-d", "--name", "fmt-b", "-l", "app=shop", "-l", "tier=db", "busybox", "sleep", "60")
    clean.cli("run", "--name", "fmt-c", "busybox", "sh", "-c", "exit 3", check=False)
    table = lines(clean, "ps", "--format", "table {{.Names}}\\t{{.Status}}\\t{{.Label \"tier\"}}")
    # docker's tabwriter: columns at least 10 wide, 3 spaces after the widest cell
    assert table[0].startswith("NAMES     STATUS   ") and table[0].endswith("   tier")
    assert [row.split()[0] for row in table[1:]] == ["fmt-b", "fmt-a"]      # newest first, running only
    assert all(row[10:].startswith("Up ") for row in table[1:])
    tier_at = table[0].index("tier")
    assert [row[tier_at:] for row in table[1:]] == ["db", "web"]
    assert tier_at == max(len(row[10:].rsplit("   ", 1)[0].rstrip()) for row in table[1:]) + 13
    assert lines(clean, "ps", "--filter", "label=app=shop", "--format", "{{.Names}}") == ["fmt-b", "fmt-a"]
    assert lines(clean, "ps", "--filter", "label=tier=db", "--format", "{{.Names}}") == ["fmt-b"]
    assert lines(clean, "ps", "-f", "label=app", "-f", "label=tier=web", "--format", "{{.Names}}") == ["fmt-a"]
    exited = lines(clean, "ps", "-f", "status=exited", "--format", "{{.Names}} {{.State}} {{.Status}}")
    assert len(exited) == 1 and exited[0].startswith("fmt-c exited Exited (3) ")
    assert lines(clean, "ps", "-a", "-f", "exited=3", "-q") == [clean.out("inspect", "-f", "{{.Id}}", "fmt-c")[:12]]
    assert lines(clean, "ps", "-a", "-f", "ancestor=busybox", "-f", "name=fmt-[ab]", "--format", "{{.Names}}") == \
        ["fmt-b", "fmt-a"]
    row = json.loads(clean.out("ps", "-f", "name=fmt-a", "--format", "{{json .}}"))
    assert row["Names"] == "fmt-a" and row["Image"] == "busybox" and row["Command"] == '"sleep 60"'
    assert row["Labels"] == "app=shop,tier=web"
    assert row["Networks"] in lines(clean, "network", "ls", "--format", "{{.Name}}")   # the default's name
    assert lines(clean, "ps", "-f", "network=bridge", "-f", "name=fmt-a", "-q") == [row["ID"]]
    assert lines(clean, "ps", "-f", f"network={row['Networks']}", "-f", "name=fmt-a", "-q") == [row["ID"]]
    refused = clean.cli("ps", "--filter", "colour=red", check=False)
    assert refused.returncode == 125 and b"invalid filter 'colour'" in refused.stderr


def test_images_format_and_filter(clean):
    assert "busybox:latest" in lines(clean, "images", "--format", "{{.Repository}}:{{.Tag}}")
    table = lines(clean, "images", "--filter", "reference=busybox", "--format", "table {{.Repository}}\\t{{.Tag}}")
    assert table == ["REPOSITORY   TAG", "busybox      latest"]
    assert lines(clean, "images", "-f", "reference=nothing*", "-q") == []
    assert lines(clean, "system", "df", "--format", "{{.Type}}") == ["Images", "Containers"]
    history = lines(clean, "history", "--format", "table {{.ID}}\\t{{.Size}}", "busybox")
    assert history[0].split() == ["IMAGE", "SIZE"] and len(history) >= 2


def test_events_filter_and_format(clean):
    since = str(time.time() - 1)
    clean.cli("run", "--name", "fmt-ev", "-l", "watch=yes", "busybox", "true")
    clean.cli("run", "--name", "fmt-other", "busybox", "true")
    seen = lines(clean, "events", "--since", since, "--filter", "container=fmt-ev", "--filter", "event=die",
                 "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}")
    assert seen == ["container die fmt-ev 0"]
    labelled = lines(clean, "events", "--since", since, "--filter", "label=watch=yes", "--format", "{{.Action}}")
    assert "start" in labelled and "die" in labelled
    assert not any("fmt-other" in line for line in lines(
        clean, "events", "--since", since, "--filter", "label=watch", "--format", "{{.Actor.Attributes.name}}"))
    refused = clean.cli("events", "--filter", "status=x", check=False)
    assert refused.returncode == 125 and b"invalid filter 'status' for events" in refused.stderr


def test_stats_and_network_ls_format(clean):
    clean.cli("run", "-d", "--name", "fmt-stats", "busybox", "sleep", "60")
    rows = lines(clean, "stats", "--no-stream", "--format", "table {{.Name}}\\t{{.PIDs}}", "fmt-stats")
    assert rows[0].split() == ["NAME", "PIDS"] and rows[1].split() == ["fmt-stats", "1"]
    networks = lines(clean, "network", "ls", "--format", "table {{.Name}}\\t{{.Driver}}\\t{{.Scope}}")
    assert networks[0].split() == ["NAME", "DRIVER", "SCOPE"]
    assert networks[1:] and all(row.split()[1:] == ["bridge", "local"] for row in networks[1:])
    name = networks[1].split()[0]
    clean.cli("network", "create", "fmt-net")
    try:
        assert lines(clean, "network", "ls", "-f", "type=custom", "-f", "name=fmt-", "-q") == ["fmt-net"]
        assert "fmt-net" not in lines(clean, "network", "ls", "--filter", "type=builtin", "-q")
    finally:
        clean.cli("network", "rm", "fmt-net")
    assert clean.out("network", "inspect", "-f", "{{.name}}", name) == name


def test_health_filter_and_template(clean):
    clean.cli("run", "-d", "--name", "fmt-ok", "--health-cmd", "true", "--health-interval", "0.3s", "busybox",
              "sleep", "60")
    clean.cli("run", "-d", "--name", "fmt-plain", "busybox", "sleep", "60")
    deadline = time.monotonic() + 30
    while clean.out("inspect", "-f", "{{.State.Health.Status}}", "fmt-ok") != "healthy":
        assert time.monotonic() < deadline, "the health check never passed"
        time.sleep(0.2)
    assert lines(clean, "ps", "-f", "health=healthy", "--format", "{{.Names}} {{.Status}}")[0].startswith(
        "fmt-ok Up ") and lines(clean, "ps", "-f", "health=healthy", "--format", "{{.Status}}")[0].endswith(
        "(healthy)")
    assert lines(clean, "ps", "-f", "health=none", "-f", "name=fmt-", "--format", "{{.Names}}") == ["fmt-plain"]
    assert lines(clean, "ps", "-f", "health=unhealthy", "-q") == []


def test_volumes_in_ps_and_volume_ls(clean):
    clean.cli("run", "-d", "--name", "fmt-vol", "-v", "fmtvol:/data", "-v", "/tmp:/hosttmp:ro", "busybox",
              "sleep", "60")
    try:
        assert clean.out("ps", "-f", "name=fmt-vol", "--format", "{{.Mounts}} {{.LocalVolumes}}") == "fmtvol,/tmp 1"
        assert lines(clean, "ps", "-f", "volume=fmtvol", "--format", "{{.Names}}") == ["fmt-vol"]
        assert lines(clean, "ps", "-f", "volume=/data", "--format", "{{.Names}}") == ["fmt-vol"]
        assert lines(clean, "volume", "ls", "-f", "name=^fmtvol$", "--format", "table {{.Name}}\\t{{.Driver}}") == \
            ["VOLUME NAME   DRIVER", "fmtvol        local"]
        assert "fmtvol" not in lines(clean, "volume", "ls", "-q", "-f", "dangling=true")
        assert clean.out("volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "fmtvol") == "fmtvol local"
    finally:
        clean.cli("rm", "-f", "fmt-vol")
        clean.cli("volume", "rm", "fmtvol", check=False)
