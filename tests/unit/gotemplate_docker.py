"""Templates and what the real docker CLI (Go's text/template with docker's functions) printed
for them, the oracle of tests/unit/test_gotemplate.py.

`python -m tests.unit.gotemplate_docker` records them again with the docker CLI on PATH and
no daemon: it writes DATA into the metadata of a throw-away docker context (in a temporary
DOCKER_CONFIG) and runs `docker context inspect --format` over it, which evaluates the
template over Go's map[string]interface{} of that JSON, as `docker inspect` does over a
container's. Output goes to tests/unit/gotemplate_docker.json (recorded with docker 28.x).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RECORDED = Path(__file__).with_suffix(".json")

DATA = {
    "Id": "a1b2c3d4e5f6",
    "Name": "web",
    "State": {"Error": None, "Pid": 12, "Running": True, "Status": "running"},
    "Config": {"Cmd": None, "Env": ["A=1", "B=2"], "Labels": {"a": "1", "b": "2", "com.example.tier": "web"},
               "Tags": ["x", "y", "z"], "Empty": [], "Nothing": {}},
    "Float": 1234567.0, "Big": 1700000000.5, "Small": 0.00001, "Half": 0.5,
    "Html": "<a href='x'>&\"</a>", "Words": "hello wORLD-x_y z",
}

CASES = [
    # fields and what is missing
    "{{.Name}}", "{{.State.Running}}", "{{.State.Status}}", "{{.Missing}}", "{{.Missing.Sub.Deeper}}",
    "{{.State.Error}}", "{{.Config.Cmd}}", "{{.Config.Labels}}", "{{.Config.Env}}", "{{.Config.Empty}}",
    "{{.Config.Nothing}}", "{{.State}}", "{{.Float}} {{.Big}} {{.Small}} {{.Half}}",
    # json
    "{{json .Config.Labels}}", "{{json .Config.Env}}", "{{json .State.Error}}", "{{json .Missing}}",
    "{{json .Name}}", "{{json .Html}}", "{{json .Float}} {{json .Big}} {{json .Small}}", "{{.Config.Env | json}}",
    "{{json .Config.Empty}} {{json .Config.Nothing}}",
    # index, len, slice
    '{{index .Config.Labels "a"}}', '{{index .Config.Labels "missing"}}', '{{index .Config.Labels "com.example.tier"}}',
    "{{index .Config.Env 1}}", "{{len .Config.Env}} {{len .Config.Labels}} {{len .Name}} {{len .Config.Empty}}",
    "{{slice .Name 1}} {{slice .Name 1 2}} {{slice .Config.Tags 1 3}}",
    # range, if, with
    "{{range .Config.Env}}[{{.}}]{{end}}", "{{range $i, $e := .Config.Tags}}{{$i}}={{$e}} {{end}}",
    "{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}};{{end}}", "{{range $v := .Config.Labels}}{{$v}}{{end}}",
    "{{range .Config.Empty}}x{{else}}empty{{end}}", "{{range .Missing}}x{{else}}none{{end}}",
    "{{range .Config.Tags}}{{if eq . \"y\"}}{{continue}}{{end}}{{.}}{{end}}",
    "{{range .Config.Tags}}{{if eq . \"y\"}}{{break}}{{end}}{{.}}{{end}}",
    "{{if .State.Running}}up{{else}}down{{end}}", "{{if .Missing}}a{{else if .Name}}b{{else}}c{{end}}",
    "{{if not .State.Running}}a{{else if .Missing}}b{{else}}c{{end}}", "{{if .Config.Empty}}a{{end}}|",
    "{{with .State}}{{.Status}}{{end}}", "{{with .Missing}}x{{else}}no{{end}}",
    "{{with $s := .State}}{{$s.Status}}{{end}}",
    # comparison and logic
    '{{eq .Name "web"}} {{eq .Name "a" "web"}} {{ne .Name "web"}}', "{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge 3 2}}",
    '{{lt "a" "b"}} {{eq true true}} {{eq 1.5 1.5}}', '{{and .Name .Missing}}|{{and .Name "x"}}|{{or .Missing "y"}}',
    "{{or .Config.Empty .Name}} {{not .Config.Empty}} {{not .Name}}", '{{if and .State.Running (eq .Name "web")}}ok{{end}}',
    # printing
    '{{print "a" "b" 1 2 "c" 3}}', '{{println "a" 1 true}}', '{{print .Config.Tags}}', '{{print nil}}',
    '{{print .Missing}}', '{{printf "%s|%5s|%-5s|%.2s" .Name "ab" "ab" "abc"}}', '{{printf "%d|%5d|%-5d|%05d" 7 7 7 7}}',
    '{{printf "%v|%v|%v" .Config.Tags .Config.Labels true}}', '{{printf "%q|%x|%X|%o|%b|%c" "a\\tb" 255 255 8 5 65}}',
    '{{printf "%.2f|%8.3f|%e|%g" 3.14159 2.5 1234.5 0.0001}}', '{{printf "%t|%v" false 1.5}}',
    '{{printf "%d" "x"}}', '{{printf "%s %s" "a"}}', '{{printf "%s" "a" "b"}}', '{{printf "100%%"}}',
    '{{printf "%x" "hi"}}', '{{printf "%+d|% d" 5 5}}',
    # docker's functions
    '{{join .Config.Env ","}}', '{{split "a,b,,c" ","}}', '{{index (split "a:b" ":") 1}}', '{{upper .Name}}',
    "{{lower .Words}}", "{{title .Words}}", '{{pad .Name 2 3}}|', "{{truncate .Name 2}} {{truncate .Name 10}}",
    "{{.Name | upper | printf \"%s!\"}}", '{{"x" | printf "%s-%s" "y"}}',
    # Go's escapers
    "{{html .Html}}", "{{js .Html}}", '{{urlquery "a b&c=d/é"}}',
    # literals, variables, whitespace, comments
    "{{0x1F}} {{1_000}} {{1.5e3}} {{'a'}} {{-3}} {{017}}", '{{"tab\\there"}} {{`raw\\n`}}',
    "{{$x := 1}}{{$x = 2}}{{$x}}", "{{$n := .Name}}{{with .State}}{{$n}}-{{.Status}}{{end}}",
    "a  {{- .Name -}}  b", "a {{/* a comment */}} b", "a {{- /* trimmed */ -}} b", "{{(.State).Status}}",
    "{{(index .Config.Tags 0) | upper}}", "{{true}} {{false}} {{nil | print}}",
    "{{.Config.Labels.a}} {{ .Name }}", 'a {{- 3}} {{3 -}} b', "{{$x := 1}}{{$x := 2}}{{$x}}",
    "{{with $x := 1}}{{$x}}{{end}}", "{{range 3}}{{.}}{{end}}", '{{"\\x41\\u00e9\\101\\a"}}|',
    '{{printf "%q" "é\\x01"}}', '{{printf "%5.1f|%-8.2e|%G" 2.25 1.5 1e-7}}', '{{printf "%#x|%#o" 255 8}}',
    '{{printf "%v" nil}}', '{{printf "%s" .Config.Tags}}', '{{printf "%d" true}}', '{{printf "%*d|%.*f" 5 1 2 3.14159}}',
    '{{printf "%"}}', '{{printf "%s" nil}}', '{{printf "%t" 1}}', "{{index .Name 0}}", '{{split "abc" ""}}',
    "{{ne 1 2}} {{le \"b\" \"a\"}}", '{{printf "%q" 65}}', '{{printf "%x" -255}}', '{{printf "%6.2f%%" 12.345}}',
    # errors: docker refuses these (the message need not match; that there is one must)
    "{{.State.Error.Sub}}", "{{.Name.Sub}}", "{{nosuch 1}}", "{{.Name", "{{end}}", "{{if .Name}}x",
    "{{len 3}}", "{{index .Config.Env 5}}", '{{eq 1 "a"}}', "{{.Name 1}}", '{{join .Name ","}}',
    "{{range .Name}}{{end}}", "{{break}}", '{{template "x"}}', "{{$nope}}", "{{)}}", '{{"unterminated}}',
    "{{slice .Name 2 1}}", "{{lt true false}}", "{{len .Missing}}", "{{index .Missing 1}}", "{{index 3 1}}",
    "{{title 3}}", "{{if}}{{end}}", '{{"a" "b"}}', "{{.Name | .State}}", "{{(1}}", "{{1e}}",
    "{{'ab'}}", '{{"\\q"}}', "{{/* open", "{{.State.Status | len 1}}",
]


def record() -> dict[str, str]:
    """Every case run through the docker CLI: its output, or "ERROR" when docker refused it."""
    results = {}
    with tempfile.TemporaryDirectory() as config:
        env = dict(os.environ, DOCKER_CONFIG=config)
        subprocess.run(["docker", "context", "create", "oracle", "--docker", "host=unix:///nonexistent.sock"],
                       env=env, check=True, capture_output=True)
        meta = next(Path(config, "contexts", "meta").glob("*/meta.json"))
        document = json.loads(meta.read_text())
        document["Metadata"].update(DATA)
        meta.write_text(json.dumps(document))
        for case in CASES:
            wrapped = "{{with .Metadata.Metadata.AdditionalFields}}" + case + "{{end}}"
            run = subprocess.run(["docker", "context", "inspect", "oracle", "--format", wrapped], env=env,
                                 capture_output=True, text=True)
            results[case] = run.stdout[:-1] if run.returncode == 0 else "ERROR"
    return results


if __name__ == "__main__":
    RECORDED.write_text(json.dumps(record(), indent=1, ensure_ascii=False) + "\n")
    sys.stdout.write(f"wrote {RECORDED}\n")
