"""Routing rules: which stable studies go where.

Written in TOML (``rix rules load FILE``), kept in the index so every node of a region
applies the same ones, evaluated in order; every matching rule delivers::

    [[rule]]
    name = "Emergency CT to Northgate"
    priority = "emergency"            # routine (default), urgent, emergency
    [rule.when]                       # all given conditions must hold; lists mean any of
    trust = "EMH"                     # the owning trust's code
    calling_ae = ["EMH_CT1", "EMH_CT2"]
    modality = ["CT"]                 # any series of the study
    body_part = "HEAD"
    description = "*stroke*"          # DICOM wildcards * and ?, case-insensitive
    [rule.send]
    ae = "NGH_PACS"                   # a registered AE (C-STORE), or
    # stow = "https://pacs.example.nhs.uk/dicomweb"  (STOW-RS)
    # token_env = "NGH_STOW_TOKEN"    # a bearer token, read from this variable
    # transfer_syntax = "1.2.840.10008.1.2.1"        # transcode (default: as stored)

Conditions may also name ``station`` and ``institution``.
"""

from __future__ import annotations

import fnmatch
import json
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.uid import UID
from sqlalchemy import Connection, delete, insert, select

from rix.errors import Conflict
from rix.index.schema import routing_rules
from rix.jobs.queue import Priority

CONDITIONS = (
    "trust",
    "calling_ae",
    "modality",
    "body_part",
    "description",
    "station",
    "institution",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """What rules look at, for one study (``stability.facts``)."""

    trust: str
    calling_ae: frozenset[str]
    modality: frozenset[str]
    body_part: frozenset[str]
    description: frozenset[str]  # the study's and its series' descriptions
    station: frozenset[str]
    institution: frozenset[str]

    def values(self, condition: str) -> Iterable[str]:
        value = getattr(self, condition)
        return (value,) if isinstance(value, str) else value


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """``ae:TITLE`` or ``stow:URL``: also the key of what it acknowledged (deliveries)."""

    ae: str = ""
    stow: str = ""
    token_env: str = ""
    transfer_syntax: str = ""

    @property
    def key(self) -> str:
        return f"ae:{self.ae}" if self.ae else f"stow:{self.stow}"

    def as_dict(self) -> dict[str, str]:
        """The keys that are set, as written in a rule's ``[rule.send]``."""
        return {
            name: getattr(self, name)
            for name in ("ae", "stow", "token_env", "transfer_syntax")
            if getattr(self, name)
        }

    @classmethod
    def parse(cls, table: Mapping[str, Any], where: str) -> Destination:
        unknown = set(table) - {"ae", "stow", "token_env", "transfer_syntax"}
        if unknown:
            raise Conflict(f"{where}: unknown send keys {sorted(unknown)}")
        ae, stow = str(table.get("ae", "")).strip(), str(table.get("stow", "")).strip()
        if bool(ae) == bool(stow):
            raise Conflict(f"{where}: send needs exactly one of ae and stow")
        if stow and not stow.startswith(("http://", "https://")):
            raise Conflict(f"{where}: stow must be an http(s) URL of a DICOMweb service")
        syntax = str(table.get("transfer_syntax", "")).strip()
        if syntax and not UID(syntax).is_transfer_syntax:
            raise Conflict(f"{where}: {syntax} is not a transfer syntax")
        return cls(
            ae=ae.upper() if ae else "",
            stow=stow.rstrip("/"),
            token_env=str(table.get("token_env", "")).strip(),
            transfer_syntax=syntax,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    name: str
    when: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    send: Destination
    priority: Priority = Priority.ROUTINE

    def matches(self, facts: Facts) -> bool:
        return all(
            any(_like(value, pattern) for value in facts.values(cond) for pattern in patterns)
            for cond, patterns in self.when.items()
        )

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "priority": self.priority.name.lower(),
            "when": {k: list(v) for k, v in self.when.items()},
            "send": self.send.as_dict(),
        }


def _like(value: str, pattern: str) -> bool:
    """DICOM wildcard matching (PS3.4 C.2.2.2.4): ``*`` and ``?`` only, every other
    character itself (fnmatch would read ``[...]`` as a set); case-insensitive."""
    return fnmatch.fnmatchcase(value.upper(), pattern.upper().replace("[", "[[]"))


def parse(text: str) -> list[Rule]:
    """Rules from TOML, or ``Conflict`` naming the first thing wrong."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Conflict(f"rules are not valid TOML: {exc}") from exc
    unknown = set(document) - {"rule"}
    if unknown:
        raise Conflict(f"unknown top-level keys {sorted(unknown)}; rules are [[rule]] tables")
    tables = document.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise Conflict("rules are [[rule]] tables")
    rules = [from_table(table, f"rule {n}") for n, table in enumerate(tables, 1)]
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise Conflict("rule names must be unique")
    return rules


def from_table(table: Mapping[str, Any], where: str) -> Rule:
    unknown = set(table) - {"name", "priority", "when", "send"}
    if unknown:
        raise Conflict(f"{where}: unknown keys {sorted(unknown)}")
    name = str(table.get("name", "")).strip()
    if not name:
        raise Conflict(f"{where}: every rule needs a name")
    where = f"{where} ({name})"
    conditions, send = table.get("when", {}), table.get("send")
    if not isinstance(conditions, dict):
        raise Conflict(f"{where}: when must be a [rule.when] table")
    if not isinstance(send, dict):
        raise Conflict(f"{where}: a rule needs a [rule.send] table")
    return Rule(
        name=name,
        when={cond: _patterns(cond, value, where) for cond, value in conditions.items()},
        send=Destination.parse(send, where),
        priority=Priority.named(str(table.get("priority", "routine"))),
    )


def _patterns(cond: str, value: object, where: str) -> tuple[str, ...]:
    if cond not in CONDITIONS:
        raise Conflict(f"{where}: unknown condition {cond!r}; use {', '.join(CONDITIONS)}")
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise Conflict(f"{where}: {cond} must be a text or a list of texts")
    if not all(isinstance(v, str) and v.strip() for v in values):
        raise Conflict(f"{where}: {cond} must be a text or a list of texts, none blank")
    return tuple(str(v).strip() for v in values)


def replace_all(conn: Connection, rules: Sequence[Rule]) -> None:
    """The rules in force become exactly these, in this order."""
    conn.execute(delete(routing_rules))
    now = time.time()
    if rules:
        conn.execute(
            insert(routing_rules),
            [
                {
                    "position": n,
                    "name": r.name,
                    "definition": json.dumps(r.definition()),
                    "updated_at": now,
                }
                for n, r in enumerate(rules)
            ],
        )


def in_force(conn: Connection) -> list[Rule]:
    rows = conn.execute(select(routing_rules.c.definition).order_by(routing_rules.c.position))
    return [from_table(json.loads(r.definition), "stored rule") for r in rows]


def to_toml(rules: Sequence[Rule]) -> str:
    """The rules written back as TOML (``rix rules show``), loadable as they are."""
    lines: list[str] = []
    for rule in rules:
        lines += ["[[rule]]", f"name = {json.dumps(rule.name)}"]
        lines.append(f"priority = {json.dumps(rule.priority.name.lower())}")
        if rule.when:
            lines.append("[rule.when]")
            lines += [f"{k} = {json.dumps(list(v))}" for k, v in rule.when.items()]
        lines.append("[rule.send]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in rule.send.as_dict().items()]
        lines.append("")
    return "\n".join(lines)
