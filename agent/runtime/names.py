"""Container ids and the friendly names given to containers run without --name."""
from __future__ import annotations

import secrets

_ADJECTIVES = ("brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lively",
               "merry", "nimble", "proud", "quiet", "rapid", "sharp", "steady", "swift", "tidy",
               "vivid", "witty", "bold", "clever", "dusty", "wild")
_NOUNS = ("bison", "colt", "mare", "mustang", "pony", "stallion", "yak", "heifer", "ram", "ewe",
          "burro", "mule", "calf", "steer", "alpaca", "llama", "goat", "lamb", "buck", "filly")


def new_id() -> str:
    return secrets.token_hex(32)


def new_name(taken: set[str]) -> str:
    """`adjective_noun`, with a number added if every pair drawn is taken."""
    for _ in range(32):
        name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}"
        if name not in taken:
            return name
    while True:
        name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}{secrets.randbelow(10000)}"
        if name not in taken:
            return name
