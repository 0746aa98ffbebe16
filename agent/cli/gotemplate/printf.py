"""Go's fmt.Sprintf for templates' `printf`: the verbs scripts use (%s %v %d %q %x %X %o %b %c
%t %f %e %g, widths, precisions, `-`, `+`, `0`, ` ` flags) and Go's complaints written into the
output (`%!d(string=abc)`, `%!s(MISSING)`, `%!(EXTRA int=1)`) rather than an error, as Go does."""
from __future__ import annotations

import re

from agent.cli.gotemplate.functions import go_float, go_string, type_name

_DIRECTIVE = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d+)?)?(.)?", re.DOTALL)


def go_quote(text: str) -> str:
    """strconv.Quote: double quotes, Go escapes, printable Unicode kept."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in "\"\\":
            out.append("\\" + char)
        elif char in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(char)])
        elif code < 0x20 or code == 0x7f:
            out.append(f"\\x{code:02x}")
        elif not char.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xffff else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out) + '"'


def _bad(verb: str, value: object) -> str:
    shown = go_string(value) if value is not None else "<nil>"
    return f"%!{verb}({type_name(value)}={shown})" if value is not None else f"%!{verb}(<nil>)"


def _number(verb: str, value: object, flags: str, precision: int | None) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        sign = "+" if "+" in flags and value >= 0 else (" " if " " in flags and value >= 0 else "")
        if verb in "dv":
            return sign + str(value)
        if verb in "xXob":
            base = {"x": "x", "X": "X", "o": "o", "b": "b"}[verb]
            prefix = {"x": "0x", "X": "0X", "o": "0", "b": "0b"}[verb] if "#" in flags else ""
            digits = format(abs(value), base)
            return ("-" if value < 0 else sign) + prefix + digits
        if verb == "c":
            return chr(value)
        if verb == "q":
            return "'" + chr(value) + "'"
        return None
    if isinstance(value, float):
        sign = "+" if "+" in flags and value >= 0 else (" " if " " in flags and value >= 0 else "")
        if verb == "v":
            return sign + go_float(value)
        if verb in "fFeEgG":
            if verb in "gG" and precision is None:
                text = go_float(value)
                return sign + (text.upper() if verb == "G" else text)
            spec = f".{6 if precision is None else precision}{verb}"
            return sign + format(value, spec).replace("inf", "Inf").replace("nan", "NaN")
        return None
    return None


def _one(verb: str, value: object, flags: str, precision: int | None) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if verb == "v":
        return (_number("v", value, flags, precision) or "") if numeric else go_string(value)
    if verb == "s":
        if isinstance(value, str):
            return value[:precision] if precision is not None else value
        return _bad(verb, value) if numeric or isinstance(value, bool) or value is None else go_string(value)
    if verb == "t":
        return ("true" if value else "false") if isinstance(value, bool) else _bad(verb, value)
    if verb == "q" and isinstance(value, str):
        return go_quote(value)
    if verb in "xX" and isinstance(value, str):
        return value.encode().hex() if verb == "x" else value.encode().hex().upper()
    number = _number(verb, value, flags, precision)
    return number if number is not None else _bad(verb, value)


def _star(args: tuple[object, ...], index: int) -> int:
    """A width or precision given as `*`: the next argument, if it is an int."""
    value = args[index] if index < len(args) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def sprintf(form: str, args: tuple[object, ...]) -> str:
    out: list[str] = []
    used = 0
    position = 0
    for match in _DIRECTIVE.finditer(form):
        out.append(form[position:match.start()])
        position = match.end()
        flags, width_text, precision_text, verb = match.groups()
        if verb is None:
            out.append("%!(NOVERB)")
            continue
        if verb == "%" and not flags and width_text is None:
            out.append("%")
            continue
        width: int | None = None
        precision: int | None = None
        if width_text == "*":
            width, used = _star(args, used), used + 1
        elif width_text:
            width = int(width_text)
        if precision_text == "*":
            precision, used = _star(args, used), used + 1
        elif precision_text is not None:
            precision = int(precision_text)
        elif match.group(0).count(".") and verb != ".":
            precision = 0
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        text = _one(verb, args[used], flags, precision)
        used += 1
        if width is not None and len(text) < width:
            if "-" in flags:
                text = text.ljust(width)
            elif "0" in flags and verb in "dxXobfFeEgG" and text[:1] in "+- ":
                text = text[0] + text[1:].rjust(width - 1, "0")
            else:
                text = text.rjust(width, "0" if "0" in flags and verb in "dxXobfFeEgG" else " ")
        out.append(text)
    out.append(form[position:])
    if used < len(args):
        extra = ", ".join(f"{type_name(arg)}={go_string(arg)}" for arg in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
