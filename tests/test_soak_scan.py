"""The soak's scan for secrets in logs (tests/e2e/soak.py :func:`find_secrets`): a planted
secret is found wherever and however it is written, an absent one is not, short ones are not
looked for. Fast: files in tmp_path only."""

from __future__ import annotations

import base64
import re
import urllib.parse
from pathlib import Path

from tests.e2e.soak import Leak, find_secrets, log_files, secret_forms, too_short

TOKEN = "ccapi_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg"
ODD = "p@ss word/with:odd&chars=é"  # changes when URL-quoted


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_raw_value_found_with_its_line(tmp_path: Path) -> None:
    log = write(tmp_path / "a.log", b"one\ntwo\n2025 INFO login " + TOKEN.encode() + b" ok\n")
    assert find_secrets([log], {"api token": TOKEN}) == [Leak(log, "api token", 3, "raw")]


def test_absent_secret_not_found(tmp_path: Path) -> None:
    log = write(tmp_path / "a.log", b"INFO ccapi_ nothing here\n" + TOKEN[:-1].encode() + b"\n")
    assert find_secrets([log], {"api token": TOKEN}) == []


def test_url_quoted_found(tmp_path: Path) -> None:
    quoted = urllib.parse.quote(ODD, safe="")
    assert quoted != ODD
    log = write(tmp_path / "a.log", f"GET /tv?token={quoted} 200\n".encode())
    assert find_secrets([log], {"odd": ODD}) == [Leak(log, "odd", 1, "url")]
    plus = re.sub("%..", lambda m: m.group().lower(), urllib.parse.quote_plus(ODD, safe=""))
    write(tmp_path / "a.log", f"x\npassword={plus}\n".encode())
    assert find_secrets([log], {"odd": ODD}) == [Leak(log, "odd", 2, "url")]


def test_json_escaped_and_basic_auth_found(tmp_path: Path) -> None:
    value = 'quote"and\\slash'
    log = write(tmp_path / "a.log", b'{"secret": "quote\\"and\\\\slash"}\n')
    assert [x.form for x in find_secrets([log], {"s": value})] == ["json"]
    basic = base64.b64encode(f"someone:{TOKEN}".encode()).decode()
    write(tmp_path / "a.log", f"Authorization: Basic {basic}\n".encode())
    assert [(x.line, x.form) for x in find_secrets([log], {"t": TOKEN})] == [(1, "base64")]


def test_split_across_a_chunk_edge_found_once(tmp_path: Path) -> None:
    """With 64-byte blocks, the secret is placed across every possible edge in turn."""
    for offset in range(1, len(TOKEN)):
        head = b"x" * (64 - offset)  # the value starts ``offset`` bytes before the edge
        log = write(tmp_path / "a.log", head + TOKEN.encode() + b"\nend\n")
        leaks = find_secrets([log], {"api token": TOKEN}, chunk=64)
        assert leaks == [Leak(log, "api token", 1, "raw")], offset
    many = b"".join(b"line %d\n" % i for i in range(500)) + TOKEN.encode() + b"\n" * 3
    log = write(tmp_path / "b.log", many + TOKEN.encode())
    assert [x.line for x in find_secrets([log], {"t": TOKEN}, chunk=50)] == [501, 504]


def test_binary_and_undecodable_bytes(tmp_path: Path) -> None:
    log = write(tmp_path / "a.log", b"\xff\xfe\x00\x80" + TOKEN.encode() + b"\x00\xc3\n")
    assert find_secrets([log], {"t": TOKEN}) == [Leak(log, "t", 1, "raw")]


def test_short_secrets_not_looked_for(tmp_path: Path) -> None:
    log = write(tmp_path / "a.log", b"pin 2468 at 12:24:68, pw abcdefg\n")
    secrets = {"pin": "2468", "short": "abcdefg", "empty": ""}
    assert find_secrets([log], secrets) == []
    assert too_short(secrets) == ["empty", "pin", "short"]
    assert find_secrets([log], {"eight": "abcdefg\n"}) == [Leak(log, "eight", 1, "raw")]


def test_several_files_and_a_vanished_one(tmp_path: Path) -> None:
    a = write(tmp_path / "a.log", b"clean\n")
    b = write(tmp_path / "b.log", b"\n\n" + ODD.encode() + b" " + TOKEN.encode() + b"\n")
    leaks = find_secrets([a, tmp_path / "gone.log", b], {"t": TOKEN, "odd": ODD})
    assert leaks == [Leak(b, "odd", 3, "raw"), Leak(b, "t", 3, "raw")]


def test_forms_distinct() -> None:
    forms = secret_forms(TOKEN)
    assert len({p for _, p in forms}) == len(forms)
    assert forms[0] == ("raw", TOKEN.encode())


def test_log_files(tmp_path: Path) -> None:
    for name in ("logs/bridge.log", "mosquitto.log", "ast/log/messages.1", "ast/log/queue_log",
                 "ast/log/cdr-custom/Master.csv", "ast/stdout.log", "pg/log", "sipp-1.log.2",
                 "ast/etc/pjsip.conf", "callcenter.toml", "spool/0001.json"):  # fmt: skip
        write(tmp_path / name, b"x")
    found = {str(p.relative_to(tmp_path)) for p in log_files(tmp_path)}
    assert found == {"logs/bridge.log", "mosquitto.log", "ast/log/messages.1",
                     "ast/log/queue_log", "ast/log/cdr-custom/Master.csv", "ast/stdout.log",
                     "pg/log", "sipp-1.log.2"}  # fmt: skip


# --- which fault a final disagreement belongs to ------------------------------------------------


def test_final_disagreements_fall_to_the_faults_around_their_calls() -> None:
    from callcenter.core.queue_log import parse_queue_log
    from tests.e2e.soak import Disagreement, attribute, call_spans

    log = ("1000|a1|sales|NONE|ENTERQUEUE||5551|1\n"
           "1003|a1|sales|NONE|EXITWITHTIMEOUT|1|1|1\n"
           "2000|b2|sales|NONE|ENTERQUEUE||5552|1\n"
           "2010|b2|sales|NONE|ABANDON|1|1|10\n")  # fmt: skip
    spans = call_spans(list(parse_queue_log(log)), [])
    assert spans == {"a1": (1000.0, 1003.0), "b2": (2000.0, 2010.0)}
    found = [Disagreement("a1", "x"), Disagreement("b2", "y"), Disagreement("contact 7", "z")]
    windows = {"bridge": (1005.0, 1020.0), "ivr": (1500.0, 1510.0), "dialer": (2012.0, 2013.0)}
    shares = attribute(found, spans, windows, margin=5)
    assert [d.call for d in shares["bridge"]] == ["a1"]  # ended 2 s before: within the margin
    assert shares["ivr"] == []
    assert [d.call for d in shares["dialer"]] == ["b2"]
    assert attribute(found, spans, windows, margin=1)["bridge"] == []
    # A CDR's channel (an attempt's customer): start to end, its last second included.
    import datetime as dt

    def local(epoch: int) -> str:
        return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")

    row = [""] * 20
    row[8], row[10], row[16] = local(3000), local(3004), "c3"
    assert call_spans([], [row]) == {"c3": (3000.0, 3005.0)}
