"""The agent's own budget (--cpu-budget, --series-budget): above it, Corral sheds optional work
in a documented order and restores it when load falls.

budget.py decides (pure logic over an injectable clock and CPU-time source, unit-tested with
fakes); metrics.py exports `corral_budget_shed{what}` and the figures it decides on. The
metrics collector, the probe event pump and the daemon ask `Budget.shed(what)`.
"""
