"""Audit events leave as DICOM audit messages (PS3.15 A.5) over syslog (RFC 5424/6587/5425),
spooled in ``audit_events`` while the repository is down, then delivered in order, once."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from rix import audit, config
from rix.audit import Kind, Outcome, syslog
from rix.audit.export import AuditExporter, Backoff
from rix.audit.messages import AuditEvent, audit_message, patient_cx
from rix.index import database
from rix.index.schema import audit_export
from tests.peers.certs import Pki, write_pki
from tests.peers.server import RixServer
from tests.peers.syslog import SyslogCollector, SyslogMessage, split_frames

AT = 1_700_000_000.25
INDICATORS = {  # A.5.2 EventOutcomeIndicator: success, minor failure, serious failure
    Outcome.SUCCESS: "0",
    Outcome.WARNING: "4",
    Outcome.REFUSED: "4",
    Outcome.FAILURE: "8",
}

# --- the message: PS3.15 A.5 XML ---


def event(**changes: object) -> AuditEvent:
    values: dict[str, object] = {
        "id": 7,
        "at": AT,
        "kind": Kind.VIEW,
        "outcome": Outcome.SUCCESS,
        "actor": "dr.jones",
        "source": "10.1.2.3",
        "study_uid": "1.2.826.0.1.3680043.8.498.1",
        "trust": "RXA",
        "patient": "RXA-MRN/H123456",
        "nhs_number": "9434765919",
    }
    values.update(changes)
    return AuditEvent(**values)  # type: ignore[arg-type]


def parsed(item: AuditEvent) -> ET.Element:
    return ET.fromstring(audit_message(item, source_id="RIX"))


def participant_objects(root: ET.Element, type_code: str, role: str) -> list[ET.Element]:
    return [
        item
        for item in root.iter("ParticipantObjectIdentification")
        if item.get("ParticipantObjectTypeCode") == type_code
        and item.get("ParticipantObjectTypeCodeRole") == role
    ]


def code_of(element: ET.Element | None) -> tuple[str | None, str | None]:
    assert element is not None
    assert element.get("originalText")
    return element.get("csd-code"), element.get("codeSystemName")


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_event_has_the_a5_general_message_fields(kind: Kind, outcome: Outcome) -> None:
    root = parsed(event(kind=kind, outcome=outcome))
    assert root.tag == "AuditMessage"
    identification = root.find("EventIdentification")
    assert identification is not None
    assert identification.get("EventActionCode") in {"C", "R", "U", "D", "E"}
    assert datetime.fromisoformat(identification.get("EventDateTime", "")).timestamp() == AT
    assert identification.get("EventOutcomeIndicator") == INDICATORS[outcome]
    assert code_of(identification.find("EventID"))[1] == "DCM"
    requestors = [p for p in root.iter("ActiveParticipant") if p.get("UserIsRequestor") == "true"]
    assert [(p.get("UserID"), p.get("NetworkAccessPointID")) for p in requestors] == [
        ("dr.jones", "10.1.2.3")
    ]
    assert requestors[0].get("NetworkAccessPointTypeCode") == "2"
    source = root.find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID") == "RIX"
    [study] = participant_objects(root, "2", "3")
    assert study.get("ParticipantObjectID") == "1.2.826.0.1.3680043.8.498.1"
    assert code_of(study.find("ParticipantObjectIDTypeCode")) == ("110180", "DCM")
    patients = participant_objects(root, "1", "1")
    assert [p.get("ParticipantObjectID") for p in patients] == [
        "H123456^^^RXA-MRN",
        "9434765919^^^NHS&2.16.840.1.113883.2.1.4.1&ISO",
    ]
    for patient in patients:
        assert code_of(patient.find("ParticipantObjectIDTypeCode")) == ("2", "RFC-3881")


@pytest.mark.parametrize(
    ("kind", "event_id", "action", "type_code"),
    [
        (Kind.QUERY, "110112", "E", None),  # A.5.3.12 Query
        (Kind.RETRIEVE, "110104", "R", None),  # A.5.3.7 DICOM Instances Transferred
        (Kind.VIEW, "110103", "R", None),  # A.5.3.6 DICOM Instances Accessed
        (Kind.STORE, "110104", "C", None),
        (Kind.STORE_DUPLICATE, "110104", "U", None),
        (Kind.EXPORT, "110106", "R", None),  # A.5.3.8 Export
        (Kind.SHARE, "110113", "E", "110135"),  # Object Security Attributes Changed
        (Kind.LOGIN, "110114", "E", "110122"),  # A.5.3.13 User Authentication, Login
        (Kind.BREAK_GLASS, "110113", "E", "110127"),  # Emergency Override Started
        (Kind.ADMIN, "110113", "E", "110129"),  # Security Configuration
    ],
)
def test_each_kind_is_the_ps3_15_a5_3_message_for_it(
    kind: Kind, event_id: str, action: str, type_code: str | None
) -> None:
    identification = parsed(event(kind=kind)).find("EventIdentification")
    assert identification is not None
    assert code_of(identification.find("EventID")) == (event_id, "DCM")
    assert identification.get("EventActionCode") == action
    found = identification.find("EventTypeCode")
    assert (None if found is None else code_of(found)) == (
        None if type_code is None else (type_code, "DCM")
    )


def test_a_refused_access_is_a_security_alert_for_use_of_a_restricted_function() -> None:
    identification = parsed(event(kind=Kind.QUERY, outcome=Outcome.REFUSED)).find(
        "EventIdentification"
    )
    assert identification is not None
    assert code_of(identification.find("EventID")) == ("110113", "DCM")
    assert code_of(identification.find("EventTypeCode")) == ("110132", "DCM")
    assert identification.findtext("EventOutcomeDescription") == "rix query: refused"


def test_a_refused_login_stays_a_user_authentication_with_a_failure_outcome() -> None:
    identification = parsed(event(kind=Kind.LOGIN, outcome=Outcome.REFUSED)).find(
        "EventIdentification"
    )
    assert identification is not None
    assert code_of(identification.find("EventID")) == ("110114", "DCM")
    assert identification.get("EventOutcomeIndicator") == "4"


def test_a_kind_added_later_is_application_activity_named_in_the_description() -> None:
    identification = parsed(event(kind="reindex")).find("EventIdentification")
    assert identification is not None
    assert code_of(identification.find("EventID")) == ("110100", "DCM")
    assert identification.findtext("EventOutcomeDescription") == "rix reindex: success"


def test_an_event_without_study_or_patient_has_no_participant_objects() -> None:
    root = parsed(event(kind=Kind.LOGIN, study_uid="", patient="", nhs_number=""))
    assert root.find("ParticipantObjectIdentification") is None


def test_an_address_that_is_not_ip_has_no_network_access_point_type() -> None:
    root = parsed(event(source="dimse"))
    requestor = root.find("ActiveParticipant")
    assert requestor is not None
    assert requestor.get("NetworkAccessPointID") == "dimse"
    assert requestor.get("NetworkAccessPointTypeCode") is None


def test_markup_and_control_characters_in_an_event_still_give_well_formed_xml() -> None:
    root = parsed(event(actor='<a href="x">&\x00\x1b', patient="RXA/12^3&4"))
    requestor = root.find("ActiveParticipant")
    assert requestor is not None
    assert requestor.get("UserID") == '<a href="x">&\ufffd\ufffd'
    assert participant_objects(root, "1", "1")[0].get("ParticipantObjectID") == (
        "12\\S\\3\\T\\4^^^RXA"
    )


@pytest.mark.parametrize(
    ("patient", "cx"),
    [("RXA/H1", "H1^^^RXA"), ("RXA/A/B", "A/B^^^RXA"), ("H1", "H1"), ("/H1", "H1")],
)
def test_a_patient_is_an_hl7_cx_with_the_issuer_as_assigning_authority(
    patient: str, cx: str
) -> None:
    assert patient_cx(patient) == cx


# --- the transport: RFC 5424 messages, RFC 6587 octet counting ---


def test_a_syslog_message_has_the_rfc5424_header_iti20_asks_for() -> None:
    raw = syslog.message(
        b"<AuditMessage/>", timestamp=AT, hostname="node 1", severity=syslog.Severity.NOTICE
    )
    received = SyslogMessage.parse(raw)
    assert (received.facility, received.severity) == (10, 5)  # authpriv, notice: <85>
    assert received.version == "1"
    assert received.timestamp == "2023-11-14T22:13:20.250Z"
    assert received.hostname == "node1"  # printable US-ASCII only (RFC 5424 6)
    assert (received.app_name, received.procid) == ("rix", "-")
    assert received.msgid == "IHE+RFC-3881"
    assert received.structured_data == "-"
    assert received.msg == b"\xef\xbb\xbf<AuditMessage/>"  # RFC 5424 6.4: BOM, UTF-8


def test_octet_counting_frames_messages_whatever_bytes_they_hold() -> None:
    bodies = ["é\n 12 ".encode(), b"3 <x/>\n"]
    stream = bytearray(b"".join(syslog.frame(body) for body in bodies))
    assert stream.startswith(b"7 ")  # octets, not the 6 characters
    assert split_frames(stream) == bodies
    assert stream == b""


def test_a_partial_frame_waits_for_the_rest() -> None:
    whole = syslog.frame(b"abcdef")
    stream = bytearray(whole[:5])
    assert split_frames(stream) == []
    stream += whole[5:]
    assert split_frames(stream) == [b"abcdef"]


@pytest.mark.parametrize("url", ["udp://h:514", "tcp://h", "h:514", "tls://:6514"])
def test_a_destination_is_tcp_or_tls_with_host_and_port(url: str) -> None:
    with pytest.raises(ValueError):
        syslog.Destination.parse(url)


# --- delivery from the spool, against a real collector, on SQLite and PostgreSQL ---


@pytest.fixture
def engine(tmp_path: Path, migrated_database_url: str) -> Iterator[Engine]:
    url = config.load({"data": tmp_path, "database_url": migrated_database_url}, env={}).index_url
    engine = database.connect(url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def collector() -> Iterator[SyslogCollector]:
    with SyslogCollector() as running:
        yield running


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return write_pki(tmp_path_factory.mktemp("pki"))


Exporter = Callable[..., AuditExporter]


@pytest.fixture
def exporter(engine: Engine) -> Iterator[Exporter]:
    """Start exporters to a URL; each is stopped at the end of the test."""
    started: list[AuditExporter] = []

    def start(url: str, ca: str = "") -> AuditExporter:
        settings = config.load({"audit_syslog": url, "audit_syslog_ca": ca}, env={})
        fast = Backoff(first=0.05, most=0.2)
        started.append(
            AuditExporter(engine, settings, batch=4, interval=0.05, backoff=fast).start()
        )
        return started[-1]

    yield start
    for running in started:
        running.stop()


def record(engine: Engine, *numbers: int, kind: Kind = Kind.VIEW) -> None:
    """One event per number, told apart by its study UID ``1.2.3.<number>``."""
    for number in numbers:
        with database.begin_write(engine) as conn:
            audit.record(
                conn,
                kind=kind,
                outcome=Outcome.SUCCESS,
                actor="dr.jones",
                source="127.0.0.1",
                study_uid=f"1.2.3.{number}",
                trust="RXA",
                patient="RXA/H1",
                nhs_number="9434765919",
            )


def studies(messages: list[SyslogMessage]) -> list[str]:
    """The study UID of each received message, after checking it is an audit message."""
    uids = []
    for received in messages:
        assert received.msgid == "IHE+RFC-3881"
        assert received.msg.startswith(b"\xef\xbb\xbf<?xml")
        root = ET.fromstring(received.msg[3:])
        [study] = participant_objects(root, "2", "3")
        uids.append(study.get("ParticipantObjectID", ""))
    return uids


def expected(*numbers: int) -> list[str]:
    return [f"1.2.3.{number}" for number in numbers]


def test_recorded_events_reach_the_repository_in_order(
    engine: Engine, collector: SyslogCollector, exporter: Exporter
) -> None:
    record(engine, 1, 2, 3, 4, 5, 6)  # more than one batch of 4
    exporter(f"tcp://127.0.0.1:{collector.port}")
    messages = collector.wait_for(6)
    assert studies(messages) == expected(1, 2, 3, 4, 5, 6)
    root = ET.fromstring(messages[0].msg[3:])
    identification = root.find("EventIdentification")
    assert identification is not None
    assert code_of(identification.find("EventID")) == ("110103", "DCM")
    assert [p.get("ParticipantObjectID") for p in participant_objects(root, "1", "1")] == [
        "H1^^^RXA",
        "9434765919^^^NHS&2.16.840.1.113883.2.1.4.1&ISO",
    ]
    assert collector.errors == []


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_events_recorded_while_the_repository_is_down_arrive_once_in_order(
    engine: Engine, exporter: Exporter, pki: Pki, scheme: str
) -> None:
    with SyslogCollector(identity=pki.server if scheme == "tls" else None) as collector:
        exporter(f"{scheme}://127.0.0.1:{collector.port}", ca=str(pki.ca))
        record(engine, 1, 2, 3)
        assert studies(collector.wait_for(3)) == expected(1, 2, 3)
        collector.stop()
        record(engine, 4, 5, 6, 7, 8)
        collector.start()
        record(engine, 9)
        messages = collector.wait_for(9)
        assert studies(messages) == expected(1, 2, 3, 4, 5, 6, 7, 8, 9)
        assert studies(collector.wait_for(10, timeout=0.3)) == expected(*range(1, 10))


def test_a_new_exporter_resumes_after_the_last_event_sent(
    engine: Engine, collector: SyslogCollector, exporter: Exporter
) -> None:
    url = f"tcp://127.0.0.1:{collector.port}"
    record(engine, 1, 2)
    first = exporter(url)
    assert studies(collector.wait_for(2)) == expected(1, 2)
    first.stop()
    record(engine, 3)
    exporter(url)
    assert studies(collector.wait_for(3)) == expected(1, 2, 3)
    assert studies(collector.wait_for(4, timeout=0.3)) == expected(1, 2, 3)
    with engine.connect() as conn:
        assert conn.execute(select(audit_export.c.destination, audit_export.c.last_id)).all() == [
            (url, 3)
        ]


def test_tls_delivers_to_a_repository_whose_certificate_the_ca_signs(
    engine: Engine, exporter: Exporter, pki: Pki
) -> None:
    with SyslogCollector(identity=pki.server) as collector:
        exporter(f"tls://127.0.0.1:{collector.port}", ca=str(pki.ca))
        record(engine, 1, 2)
        assert studies(collector.wait_for(2)) == expected(1, 2)
        assert collector.errors == []


def test_tls_sends_nothing_to_a_repository_the_ca_did_not_sign(
    engine: Engine, exporter: Exporter, pki: Pki
) -> None:
    with SyslogCollector(identity=pki.rogue) as collector:
        exporter(f"tls://127.0.0.1:{collector.port}", ca=str(pki.ca))
        record(engine, 1)
        refused = collector.wait_for_errors(1)[0]  # the handshake, which rix broke off
        assert refused.startswith("SSLError")
        assert collector.messages == []
    with engine.connect() as conn:
        assert conn.execute(select(audit_export.c.last_id)).all() == []


def test_only_one_node_exports_on_postgresql(
    backend: str, engine: Engine, collector: SyslogCollector, exporter: Exporter
) -> None:
    if backend != "postgresql":
        pytest.skip("one SQLite index serves one node")
    url = f"tcp://127.0.0.1:{collector.port}"
    exporter(url)
    exporter(url)  # a second node with the same repository
    record(engine, *range(1, 11))
    assert studies(collector.wait_for(10)) == expected(*range(1, 11))
    assert len(collector.wait_for(11, timeout=0.3)) == 10


# --- rix serve ---


def test_rix_serve_exports_what_is_recorded_in_its_index(
    tmp_path: Path, migrated_database_url: str, collector: SyslogCollector
) -> None:
    server = RixServer(
        data=tmp_path / "data",
        database_url=migrated_database_url,
        extra_env={"RIX_AUDIT_SYSLOG": f"tcp://127.0.0.1:{collector.port}"},
    ).start()
    try:
        url = config.load(
            {"data": server.data, "database_url": migrated_database_url}, env={}
        ).index_url
        engine = database.connect(url)
        try:
            record(engine, 1, kind=Kind.ADMIN)
        finally:
            engine.dispose()
        [received] = collector.wait_for(1)
        assert studies([received]) == expected(1)
        assert (received.facility, received.severity, received.app_name) == (10, 5, "rix")
    finally:
        server.stop(wait=False)
