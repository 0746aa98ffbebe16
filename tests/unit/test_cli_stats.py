from agent.cli.stats_rows import rates, select, stats_table
from agent.cli.top import render


def snap(cid, name, t, cpu, mem, calls, by=None, limit=None):
    return {"id": cid, "name": name, "image": "busybox", "time": t, "cpu_seconds": cpu,
            "memory_bytes": mem, "memory_limit_bytes": limit, "pids": 2, "net_rx_bytes": 10,
            "net_tx_bytes": 20, "syscalls": calls, "syscall_errors": 0, "by_syscall": by or {}}


def test_rates_from_two_snapshots():
    before = {"containers": [snap("a1", "web", 10.0, 1.0, 100, 1000, {"read": [800, 0], "write": [200, 0]})]}
    after = {"containers": [snap("a1", "web", 12.0, 2.0, 200, 5000, {"read": [4000, 10], "write": [1000, 0]},
                                 limit=400),
                            snap("b2", "new", 12.0, 0.5, 50, 10)]}
    rows = {r.name: r for r in rates(before, after)}
    web = rows["web"]
    assert web.cpu_percent == 50.0 and web.syscalls_per_second == 2000.0
    assert web.memory_percent == 50.0
    assert web.top_syscalls[0] == ("read", 1600.0, 5.0)
    assert rows["new"].cpu_percent is None and rows["new"].syscalls_per_second == 0.0   # no earlier reading
    assert [r.name for r in select(list(rows.values()), ["a1"])] == ["web"]
    table = stats_table(list(rows.values()))
    assert "50.00%" in table and "unlimited" in table
    screen = render(list(rows.values()), 0, "c", 120, 30)
    assert any("top syscalls of web" in line for line in screen)
    assert any(line.strip().startswith("read") for line in screen)
