"""The template engine of `--format` (agent/cli/gotemplate) against what the real docker CLI
printed for the same templates over the same data (tests/unit/gotemplate_docker.py records it),
then the parts docker's oracle cannot show: positions in errors, docker's tabwriter, headers."""
from __future__ import annotations

import json

import pytest

from agent.cli.gotemplate import TemplateError, go_json, render
from agent.cli.gotemplate.functions import go_float
from agent.cli.gotemplate.tabwriter import align
from tests.unit.gotemplate_docker import CASES, DATA, RECORDED

DOCKER = json.loads(RECORDED.read_text())
# Where Corral differs on purpose. docker's typed pass takes `join` of a []string field such as
# Config.Env; over raw JSON Go sees []interface{} and refuses. Corral always takes a list of strings.
DIFFERENT = {'{{join .Config.Env ","}}': "A=1,B=2"}


def test_every_case_was_recorded():
    assert sorted(DOCKER) == sorted(CASES)


@pytest.mark.parametrize("template", CASES)
def test_prints_what_docker_prints(template):
    expected = DIFFERENT.get(template, DOCKER[template])
    if expected == "ERROR":
        with pytest.raises(TemplateError, match=r"^template: \d+:\d+: "):
            render(template, DATA)
    else:
        assert render(template, DATA) == expected


def test_errors_name_the_position_and_the_part_at_fault():
    with pytest.raises(TemplateError) as error:
        render("ok\n  {{.State.Error.Sub}}", DATA)
    assert error.value.message == ("template: 2:5: executing at <.State.Error.Sub>: "
                                   "nil pointer evaluating interface {}.Sub")
    assert error.value.exit_code == 125 and error.value.http_status == 400
    for text, message in [("{{.Name", "1:1: unclosed action"), ("{{nosuch}}", 'function "nosuch" not defined'),
                          ("x{{end}}", "1:4: unexpected {{end}}"), ("{{if 1}}", "unexpected EOF"),
                          ("{{len 3}}", "len of type int"), ("{{.Name.X}}", "can't evaluate field X in type string"),
                          ("{{1 2}}", "can't give argument to non-function 1"),
                          ('{{define "x"}}{{end}}', "{{define}} is not supported")]:
        with pytest.raises(TemplateError, match=".*" + message.replace("{", r"\{").replace("}", r"\}")
                           .replace("(", r"\(").replace(")", r"\)")):
            render(text, DATA)


def test_go_numbers():
    assert [go_float(x) for x in (0.0, -0.0, 1.0, 123456.0, 1234567.0, 0.0001, 0.00001, 1e21, -2.5)] == \
        ["0", "-0", "1", "123456", "1.234567e+06", "0.0001", "1e-05", "1e+21", "-2.5"]
    assert go_json([1.0, 1e21, 1e-7, 0.5, float("1e20")]) == "[1,1e+21,1e-7,0.5,100000000000000000000]"
    assert go_json({"b": None, "a": "\u2028<&>"}) == '{"b":null,"a":"\\u2028<&>"}'


def test_tabwriter_pads_cells_to_ten_or_the_widest_plus_three():
    assert align("NAMES\tSTATUS\nweb\tUp 2 seconds\n") == "NAMES     STATUS\nweb       Up 2 seconds\n"
    assert align("a\tb\nlong-container-name\tc\n") == "a".ljust(22) + "b\n" + "long-container-name   c\n"
    # a line with fewer cells ends the column block: its neighbours are aligned separately
    assert align("a\tb\tc\nxx\n1\t22222222222222\t3\n") == \
        "a         b         c\nxx\n1         22222222222222   3\n"
    assert align("") == ""
