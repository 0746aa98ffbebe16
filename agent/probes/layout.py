"""A map's key and value types as ctypes, from the layout BCC describes when it compiles:
`bpf_table_key_desc` / `bpf_table_leaf_desc` give JSON such as
`["watch_entry", [["cgroup_id", "unsigned long long"], ["slot", "unsigned int"], ...], "struct"]`.

The same decoding as bcc's `BPF._decode_table_type` (bcc/__init__.py), written here because the
daemon reads maps without importing bcc (importing it maps libLLVM and libclang). The JSON is
kept in the compiled-object cache (object_file.py), so every map BCC creates gets its types,
including maps added to probes/*.c later.
"""
from __future__ import annotations

import ctypes as ct
from typing import Any

from agent.errors import InvalidArgument

BASIC: dict[str, Any] = {
    "_Bool": ct.c_bool, "char": ct.c_char, "wchar_t": ct.c_wchar, "unsigned char": ct.c_ubyte,
    "short": ct.c_short, "unsigned short": ct.c_ushort, "int": ct.c_int, "unsigned int": ct.c_uint,
    "long": ct.c_long, "unsigned long": ct.c_ulong, "long long": ct.c_longlong,
    "unsigned long long": ct.c_ulonglong, "float": ct.c_float, "double": ct.c_double,
    "long double": ct.c_longdouble, "__int128": ct.c_int64 * 2, "unsigned __int128": ct.c_uint64 * 2,
}
_KINDS = {"struct": (ct.Structure, False), "struct_packed": (ct.Structure, True), "union": (ct.Union, False)}


def decode(desc: Any) -> Any:
    """The ctypes type of a BCC type description (InvalidArgument names what is not understood)."""
    if isinstance(desc, str):
        if desc not in BASIC:
            raise InvalidArgument(f"map layout: unknown C type {desc!r}")
        return BASIC[desc]
    if not (isinstance(desc, list) and len(desc) >= 2 and isinstance(desc[0], str) and isinstance(desc[1], list)):
        raise InvalidArgument(f"map layout: expected [name, fields, kind], got {desc!r:.80}")
    anonymous: list[str] = []
    fields: list[tuple[Any, ...]] = []
    for field in desc[1]:
        if not isinstance(field, list) or len(field) not in (2, 3):
            raise InvalidArgument(f"map layout of {desc[0]}: bad field {field!r:.80}")
        if len(field) == 2:
            fields.append((field[0], decode(field[1])))
        elif isinstance(field[2], list):                        # an array: [name, type, [n]]
            fields.append((field[0], decode(field[1]) * int(field[2][0])))
        elif isinstance(field[2], int):                         # a bit field: [name, type, bits]
            fields.append((field[0], decode(field[1]), field[2]))
        elif field[2] in _KINDS:                                # a nested struct or union
            name = field[0] or f"__anon{len(anonymous)}"
            if not field[0]:
                anonymous.append(name)
            fields.append((name, decode(field)))
        else:
            raise InvalidArgument(f"map layout of {desc[0]}: bad field {field!r:.80}")
    base, packed = _KINDS.get(desc[2] if len(desc) > 2 else "struct", (ct.Structure, False))
    namespace: dict[str, Any] = {"_anonymous_": anonymous, "_fields_": fields}
    if packed:
        namespace["_pack_"] = 1
    return type(str(desc[0]), (base,), namespace)
