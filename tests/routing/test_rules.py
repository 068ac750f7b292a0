"""Routing rules as written (``rix.routing.rules``): which studies each rule matches, and
the reasons a rules file is refused before any of it is applied.

Matching follows PS3.4 C.2.2.2.4 wildcards (``*`` any run, ``?`` one character),
case-insensitively; a list means any of its values; every condition given must hold, and
a rule with none matches every study. A study matches a condition when any of its values
(any series' modality, the study's or any series' description) does.
"""

from __future__ import annotations

from typing import Any

import pytest

from rix.errors import Conflict
from rix.jobs.queue import Priority
from rix.routing.rules import Facts, Rule, parse, to_toml

SEND = '[rule.send]\nae = "DEST"\n'


def rule_when(conditions: str) -> Rule:
    """The one rule of a file with these ``[rule.when]`` lines."""
    [rule] = parse(f'[[rule]]\nname = "r"\n[rule.when]\n{conditions}\n{SEND}')
    return rule


def facts(**given: Any) -> Facts:
    """A CT head study of EMH by default; ``given`` replaces any part."""
    known: dict[str, Any] = {
        "trust": "EMH",
        "calling_ae": {"EMH_CT1"},
        "modality": {"CT"},
        "body_part": {"HEAD"},
        "description": {"CT HEAD", "Axial 5mm"},
        "station": {"CT1"},
        "institution": {"East Midlands Hospital"},
    }
    known.update(given)
    values: dict[str, Any] = {
        k: v if isinstance(v, str) else frozenset(v) for k, v in known.items()
    }
    return Facts(**values)


NOTHING = facts(
    trust="",
    calling_ae=(),
    modality=(),
    body_part=(),
    description=(),
    station=(),
    institution=(),
)


@pytest.mark.parametrize(
    ("conditions", "study", "matches"),
    [
        pytest.param('trust = "EMH"', facts(), True, id="trust"),
        pytest.param('trust = "NGH"', facts(), False, id="trust-other"),
        pytest.param('trust = "emh"', facts(), True, id="trust-case-insensitive"),
        pytest.param('calling_ae = ["EMH_CT2", "EMH_CT1"]', facts(), True, id="calling-ae-list"),
        pytest.param('calling_ae = ["EMH_CT2"]', facts(), False, id="calling-ae-not-listed"),
        pytest.param('modality = "MR"', facts(modality={"CT", "MR"}), True, id="modality-any"),
        pytest.param('modality = "MR"', facts(), False, id="modality-absent"),
        pytest.param('modality = "ct"', facts(), True, id="modality-case-insensitive"),
        pytest.param('body_part = "HEAD"', facts(), True, id="body-part"),
        pytest.param('body_part = "CHEST"', facts(), False, id="body-part-other"),
        pytest.param('body_part = "HEAD"', facts(body_part=()), False, id="body-part-unknown"),
        pytest.param('description = "*head*"', facts(), True, id="description-star"),
        pytest.param('description = "axial*"', facts(), True, id="description-of-a-series"),
        pytest.param('description = "*stroke*"', facts(), False, id="description-other"),
        pytest.param('description = "CT"', facts(), False, id="description-whole-value"),
        pytest.param('station = "CT?"', facts(), True, id="station-question-mark"),
        pytest.param('station = "CT?"', facts(station={"CT12"}), False, id="station-one-char"),
        pytest.param('institution = "East*"', facts(), True, id="institution"),
        pytest.param('institution = "*Northgate*"', facts(), False, id="institution-other"),
        pytest.param(
            'trust = "EMH"\nmodality = "CT"\ndescription = "*HEAD*"', facts(), True, id="all-hold"
        ),
        pytest.param('trust = "EMH"\nmodality = "MR"', facts(), False, id="one-fails"),
        pytest.param(
            'trust = "EMH"\nmodality = "CT"', facts(trust="NGH"), False, id="other-one-fails"
        ),
    ],
)
def test_a_rule_matches_when_every_condition_holds(
    conditions: str, study: Facts, matches: bool
) -> None:
    assert rule_when(conditions).matches(study) is matches


@pytest.mark.parametrize("study", [facts(), NOTHING], ids=["ct-head", "nothing-known"])
def test_a_rule_without_conditions_matches_every_study(study: Facts) -> None:
    [rule] = parse(f'[[rule]]\nname = "everything"\n{SEND}')
    assert rule.when == {}
    assert rule.matches(study)


def test_a_rules_file_keeps_order_priority_and_destination() -> None:
    text = (
        '[[rule]]\nname = "CT to Northgate"\npriority = "emergency"\n[rule.when]\n'
        'modality = ["CT"]\n[rule.send]\nae = "ngh_pacs"\n'
        '[[rule]]\nname = "All to the cloud"\n[rule.send]\n'
        'stow = "https://pacs.example.nhs.uk/dicomweb/"\ntoken_env = "CLOUD_TOKEN"\n'
        'transfer_syntax = "1.2.840.10008.1.2.1"\n'
    )
    first, second = parse(text)
    assert (first.name, first.priority, first.send.key) == (
        "CT to Northgate",
        Priority.EMERGENCY,
        "ae:NGH_PACS",
    )
    assert (second.name, second.priority, second.send.key) == (
        "All to the cloud",
        Priority.ROUTINE,
        "stow:https://pacs.example.nhs.uk/dicomweb",
    )
    assert (second.send.token_env, second.send.transfer_syntax) == (
        "CLOUD_TOKEN",
        "1.2.840.10008.1.2.1",
    )
    assert parse(to_toml([first, second])) == [first, second]


def rule_with(body: str) -> str:
    return f'[[rule]]\nname = "r"\n{body}'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param('[[rule]\nname = "r"', "rules are not valid TOML", id="bad-toml"),
        pytest.param('route = "x"\n', "unknown top-level keys ['route']", id="top-level-key"),
        pytest.param(
            rule_with(f'destination = "X"\n{SEND}'), "unknown keys ['destination']", id="rule-key"
        ),
        pytest.param(f"[[rule]]\n{SEND}", "every rule needs a name", id="no-name"),
        pytest.param(
            rule_with(f'[rule.when]\ncolour = "red"\n{SEND}'),
            "unknown condition 'colour'",
            id="unknown-condition",
        ),
        pytest.param(
            rule_with(f"[rule.when]\nmodality = []\n{SEND}"),
            "modality must be a text or a list of texts",
            id="empty-list",
        ),
        pytest.param(
            rule_with(f"[rule.when]\nmodality = ['CT', 2]\n{SEND}"),
            "modality must be a text or a list of texts",
            id="list-of-non-text",
        ),
        pytest.param(rule_with(""), "a rule needs a [rule.send] table", id="no-send"),
        pytest.param(
            rule_with('[rule.send]\nae = "DEST"\nstow = "https://pacs.example/dicomweb"\n'),
            "send needs exactly one of ae and stow",
            id="both-ae-and-stow",
        ),
        pytest.param(
            rule_with('[rule.send]\ntoken_env = "T"\n'),
            "send needs exactly one of ae and stow",
            id="neither-ae-nor-stow",
        ),
        pytest.param(
            rule_with('[rule.send]\nstow = "ftp://pacs.example/dicomweb"\n'),
            "stow must be an http(s) URL",
            id="stow-not-http",
        ),
        pytest.param(
            rule_with('[rule.send]\nae = "DEST"\nhost = "10.0.0.1"\n'),
            "unknown send keys ['host']",
            id="send-key",
        ),
        pytest.param(
            rule_with('[rule.send]\nae = "DEST"\ntransfer_syntax = "1.2.840.10008.5.1.4.1.1.2"\n'),
            "1.2.840.10008.5.1.4.1.1.2 is not a transfer syntax",
            id="sop-class-as-transfer-syntax",
        ),
        pytest.param(
            rule_with('[rule.send]\nae = "DEST"\ntransfer_syntax = "JPEG"\n'),
            "JPEG is not a transfer syntax",
            id="name-as-transfer-syntax",
            marks=pytest.mark.filterwarnings("ignore:Invalid value for VR UI"),
        ),
        pytest.param(
            rule_with(f'priority = "high"\n{SEND}'), "unknown priority 'high'", id="priority"
        ),
        pytest.param(
            rule_with(SEND) + rule_with(SEND), "rule names must be unique", id="duplicate-names"
        ),
    ],
)
def test_a_rules_file_with_a_mistake_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(Conflict) as refused:
        parse(text)
    assert reason in refused.value.reason


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(rule_with(f"[rule.when]\nmodality = 3\n{SEND}"), id="condition-number"),
        pytest.param(rule_with(f'when = "CT"\n{SEND}'), id="when-not-a-table"),
        pytest.param(rule_with('send = "DEST"\n'), id="send-not-a-table"),
        pytest.param("rule = 3\n", id="rule-not-a-table"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_with_the_reason(text: str) -> None:
    with pytest.raises(Conflict):
        parse(text)


def test_square_brackets_are_not_wildcards() -> None:
    """PS3.4 C.2.2.2.4 has two wildcards, * and ?; any other character matches itself."""
    rule = rule_when('description = "*[urgent]*"')
    assert not rule.matches(facts(description={"CT HEAD"}))
    assert rule.matches(facts(description={"CT HEAD [urgent]"}))
