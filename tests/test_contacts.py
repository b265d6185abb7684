"""Contact imports: numbers normalised to E.164, time zones from the number, duplicates and
DNC numbers left out and reported, and every bad row one line naming line, column and reason,
with nothing written."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from callcenter.campaigns import contacts
from callcenter.campaigns.numbers import Normaliser, NumberError
from callcenter.campaigns.store import CampaignError
from tests.conftest import Cli, count


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture
def campaign(run_cli: Cli) -> Cli:
    run_cli.ok("queues", "add", "sales")
    run_cli.ok("campaigns", "add", "spring", "--queue", "sales")
    return run_cli


def write(tmp_path: Path, text: str, name: str = "list.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_good_import_normalises_and_fills_time_zones(campaign: Cli, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "phone,name,priority,account,timezone\n"
        "(212) 555-0100,Ann,5,A-1,\n"
        "+1 415 555 0101,Bob,,B-2,\n"
        "+44 20 7946 0018,Cy,1,C-3,\n"
        "1-800-555-0199,Toll,0,D-4,\n"
        "+1 312 555 0102,Dee,2,E-5,America/Denver\n",
    )
    out = campaign.ok("contacts", "import", path, "--campaign", "spring", "--json")
    report = json.loads(out.output)
    assert report["imported"] == 5
    assert report["site_timezone"] == 1  # the toll-free number spans every NANP zone
    listed = json.loads(campaign.ok("contacts", "list", "--campaign", "spring", "--json").output)
    by_phone = {c["phone"]: c for c in listed}
    assert set(by_phone) == {
        "+12125550100",
        "+14155550101",
        "+442079460018",
        "+18005550199",
        "+13125550102",
    }
    assert by_phone["+12125550100"]["timezone"] == "America/New_York"
    assert by_phone["+14155550101"]["timezone"] == "America/Los_Angeles"
    assert by_phone["+442079460018"]["timezone"] == "Europe/London"
    assert by_phone["+18005550199"]["timezone"] == "UTC"  # the site's
    assert by_phone["+13125550102"]["timezone"] == "America/Denver"  # the file's wins
    assert by_phone["+12125550100"]["fields"] == {"account": "A-1"}
    assert by_phone["+12125550100"]["priority"] == 5
    assert listed[0]["phone"] == "+12125550100"  # highest priority first
    assert "Ann" in campaign.ok("contacts", "list", "--campaign", "spring").output
    shown = json.loads(campaign.ok("campaigns", "show", "spring", "--json").output)
    assert shown["contacts"] == 5


def test_duplicates_and_dnc_are_left_out_and_reported(
    campaign: Cli, clean_db: Engine, tmp_path: Path
) -> None:
    campaign.ok(
        "contacts", "import", write(tmp_path, "phone\n2125550100\n"), "--campaign", "spring"
    )
    campaign.ok("dnc", "add", "4155550101")
    path = write(
        tmp_path,
        "phone,name\n212-555-0100,again\n4155550101,dnc\n3125550102,new\n(312) 555-0102,dup\n",
        "second.csv",
    )
    out = campaign.ok("contacts", "import", path, "--campaign", "spring")
    assert (
        "imported 1 contacts into campaign spring from 4 rows: 1 duplicates in the file, "
        "1 already in the campaign, 1 on the do-not-call list left out"
    ) in out.output
    assert "line 5: +13125550102 is also on line 4" in out.output
    assert "line 2: +12125550100 is already in campaign spring" in out.output
    assert count(clean_db, "contacts") == 2


BAD_FILES = [
    ("phone,name\n2125550100,a\n12345,b\n", "line 3, column 'phone': '12345' is not a valid"),
    ("phone,name\n2125550100,a\n,b\n", "line 3, column 'phone': the number is empty"),
    ("phone,name\nabc,a\n", "line 2, column 'phone': 'abc' is not a phone number"),
    ("phone,tz\n2125550100,Mars/Base\n", "line 2, column 'tz': 'Mars/Base' is not a time zone"),
    ("phone,priority\n2125550100,high\n", "line 2, column 'priority': 'high' is not a whole"),
    ("phone,priority\n2125550100,101\n", "line 2, column 'priority': 101 is not between 0"),
    ("phone,name\n2125550100,a,extra\n", "line 2, column '#3': 3 columns where the header"),
    ("phone,name,tz\n2125550100,a\n", "line 2, column 'tz': 2 columns where the header has 3"),
    ("number,name\n2125550100,a\n", "line 1, column 'phone': the header has no phone column"),
    ("phone,name,name\n2125550100,a,b\n", "line 1, column 'name': the header names this"),
    ("", "is empty"),
]


@pytest.mark.parametrize(("text", "reason"), BAD_FILES)
def test_bad_row_stops_the_import(
    campaign: Cli, clean_db: Engine, tmp_path: Path, text: str, reason: str
) -> None:
    result = campaign("contacts", "import", write(tmp_path, text), "--campaign", "spring")
    assert result.exit_code == 1
    line = error_line(result.output)
    assert reason in line
    assert count(clean_db, "contacts") == 0


def test_unknown_campaign_missing_file_and_bad_region(
    campaign: Cli, clean_db: Engine, tmp_path: Path
) -> None:
    path = write(tmp_path, "phone\n2125550100\n")
    for args, reason in (
        (["--campaign", "nope"], "no campaign named 'nope'"),
        (["--campaign", "spring", "--region", "ZZ"], "region 'ZZ'"),
    ):
        result = campaign("contacts", "import", path, *args)
        assert result.exit_code == 1
        assert reason in error_line(result.output)
    result = campaign("contacts", "import", str(tmp_path / "none.csv"), "--campaign", "spring")
    assert result.exit_code == 1
    assert "cannot read" in error_line(result.output)
    result = campaign("contacts", "list", "--campaign", "nope")
    assert result.exit_code == 1
    assert count(clean_db, "contacts") == 0


def test_region_option_reads_national_numbers(campaign: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n020 7946 0018\n")
    campaign.ok("contacts", "import", path, "--campaign", "spring", "--region", "gb")
    listed = json.loads(campaign.ok("contacts", "list", "--campaign", "spring", "--json").output)
    assert [(c["phone"], c["timezone"]) for c in listed] == [("+442079460018", "Europe/London")]


def test_normaliser_caches_by_raw_text() -> None:
    numbers = Normaliser("US")
    assert numbers.e164(" (212) 555-0100 ") == "+12125550100"
    assert numbers.number("2125550100").timezone == "America/New_York"
    with pytest.raises(NumberError, match="not a valid number"):
        numbers.e164("1234")
    with pytest.raises(NumberError):  # the cached failure fails again
        numbers.e164("1234")
    assert len(numbers._cache) == 3


def test_parallel_prefill_matches_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contacts, "PARALLEL_FROM", 1)
    pools: list[object] = []
    real = ProcessPoolExecutor

    def recording(*args: Any, **kwargs: Any) -> Any:
        pools.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(contacts, "ProcessPoolExecutor", recording)
    raws = {f"212555{n:04d}" for n in range(100, 140)} | {"bad"}
    pooled = Normaliser("US")
    contacts.prefill(pooled, raws, workers=2)
    assert pools or threading.active_count() > 1  # forks only with no other thread
    assert len(pooled._cache) == len(raws)
    single = Normaliser("US")
    for raw in raws:
        try:
            assert pooled.number(raw) == single.number(raw)
        except NumberError:
            assert raw == "bad"


def test_one_pass_validation_agrees_with_phonenumbers() -> None:
    """``_normalise`` works out region and type once; it must say what ``is_valid_number``
    and ``timezone.time_zones_for_number`` say."""
    import random

    import phonenumbers
    from phonenumbers import timezone as pn_timezone

    from callcenter.campaigns.numbers import Number, _normalise

    rng = random.Random(5)
    samples = [("+18005550199", "US"), ("+80012345678", "US"), ("2125550100", "US")]
    # +1 is shared: Canada and the US by type, Jamaica and Puerto Rico by leading digits.
    for area in ("416", "604", "876", "787", "242", "671", "212", "900", "555"):
        samples += [(f"+1{area}{n:07d}", "US") for n in range(2_000_000, 9_000_000, 700_000)]
    for _ in range(3000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 12)))
        prefix = rng.choice(["", "+", "+1", "+44", "+33", "00"])
        samples.append((prefix + digits, rng.choice(["US", "GB", "FR", "DE", "IN", "BR", "JP"])))
    valid = 0
    for raw, region in samples:
        got = _normalise(raw, region)
        try:
            parsed = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            assert isinstance(got, str)
            continue
        if not phonenumbers.is_valid_number(parsed):
            assert isinstance(got, str), raw
            continue
        valid += 1
        zones = [z for z in pn_timezone.time_zones_for_number(parsed) if z != "Etc/Unknown"]
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        assert got == Number(e164, zones[0] if len(zones) == 1 else ""), raw
    assert valid > 100


def test_site_region_is_checked_with_the_settings() -> None:
    from callcenter import config

    with pytest.raises(config.ConfigError, match=r"site\.region = 'XX' is not a region"):
        config.load(environ={"CALLCENTER_SITE__REGION": "XX", "CALLCENTER_CONFIG": ""})
    settings = config.load(environ={"CALLCENTER_SITE__REGION": "gb", "CALLCENTER_CONFIG": ""})
    assert Normaliser(settings.site.region).e164("020 7946 0018") == "+442079460018"


def test_time_zone_by_prefix_agrees_with_phonenumbers() -> None:
    """The time zone is looked up once per :func:`numbers._zone_key`; for every number it
    must be what ``timezone.time_zones_for_number`` says of that number. Numbers are drawn
    around every region's example numbers (each type), so that many share a key."""
    import random

    import phonenumbers
    from phonenumbers import PhoneNumberType
    from phonenumbers import timezone as pn_timezone

    from callcenter.campaigns import numbers as numbers_module

    numbers_module._ZONE_BY_KEY.clear()
    rng = random.Random(13)
    types = (
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.MOBILE,
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.VOIP,
        PhoneNumberType.UAN,
        PhoneNumberType.PAGER,
    )
    bases = [
        phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        for kind in types
        if (example := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    bases += [f"+1{area}5550100" for area in (212, 305, 416, 604, 808, 907, 876, 787)]
    checked = 0
    for base in bases:
        for _ in range(25):
            keep = rng.randint(4, len(base) - 1)
            raw = base[:keep] + "".join(rng.choice("0123456789") for _ in base[keep:])
            got = numbers_module._normalise(raw, "US")
            parsed = phonenumbers.parse(raw, "US")
            if not phonenumbers.is_valid_number(parsed):
                assert isinstance(got, str), raw
                continue
            assert isinstance(got, numbers_module.Number), raw
            zones = [z for z in pn_timezone.time_zones_for_number(parsed) if z != "Etc/Unknown"]
            assert got.timezone == (zones[0] if len(zones) == 1 else ""), raw
            checked += 1
    assert checked > 10_000
    # Far fewer lookups than numbers: the cache is used, and its keys are short prefixes.
    assert len(numbers_module._ZONE_BY_KEY) < checked / 2


def quoted_contacts() -> str:
    """A file that exercises every path of the check: duplicates within a block and across
    blocks (one with a bad priority, which is not looked at), quoted fields with line breaks
    across block boundaries, characters COPY must escape, blank lines, toll-free numbers that
    get the site's time zone."""
    rows = ["phone,name,priority,notes"]
    for n in range(120):
        phone = f"212555{n:04d}" if n % 9 else f"800555{n:04d}"
        name = f"Customer {n}"
        if n % 7 == 0:
            name = f'"Smith, {n}\nsecond line\r\nthird"'
        if n % 11 == 0:
            name = f"Tab\there\\back {n}"
        notes = f'"note ""{n}""\n"' if n % 5 == 0 else f"n{n}\\x"
        rows.append(f"{phone},{name},{n % 10},{notes}")
        if n % 13 == 0:
            rows.append("")
        if n % 17 == 0:
            rows.append(f"+1 {phone},again,bad priority,x")
    rows.append("+1 212 555 0001,late duplicate,3,y")
    return "\n".join(rows) + "\n"


def check_file(path: Path, workers: int) -> tuple[contacts.ImportReport, list[str]]:
    report = contacts.ImportReport()
    texts: list[str] = []
    contacts.check_contacts(path, Normaliser("US"), "UTC", report, texts.append, workers)
    return report, "".join(texts).splitlines()


def test_parallel_check_matches_one_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(contacts, "PARALLEL_FROM", 10)
    monkeypatch.setattr(contacts, "BLOCK_LINES", 7)
    pools: list[object] = []
    real = ProcessPoolExecutor

    def recording(*args: Any, **kwargs: Any) -> Any:
        pools.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(contacts, "ProcessPoolExecutor", recording)
    path = Path(write(tmp_path, quoted_contacts()))
    single, single_rows = check_file(path, 1)
    assert not pools
    pooled, pooled_rows = check_file(path, 2)
    assert pools or threading.active_count() > 1  # forks only with no other thread
    assert pooled == single
    assert pooled_rows == single_rows
    assert single.rows == 120 + 9  # 120 rows and 9 duplicates
    assert single.duplicates_in_file == 9
    assert single.site_timezone == 14  # the toll-free numbers
    # A record's line is where it ends, as the csv module counts (a quoted field of the
    # first row holds a line break).
    assert single.examples[0] == "line 5: +18005550000 is also on line 3"
    lines = [int(row.split("\t")[0]) for row in single_rows]
    assert lines == sorted(lines)
    by_line = {int(row.split("\t")[0]): row.split("\t") for row in single_rows}
    # Row n=7 spans three lines, and is numbered by the last.
    text = quoted_contacts().split("\n")
    line_of_7 = next(i for i, t in enumerate(text, 1) if t.startswith("2125550007,")) + 2
    assert by_line[line_of_7][1:3] == ["+12125550007", "Smith, 7\\nsecond line\\r\\nthird"]


def test_bad_row_in_a_later_block_is_the_one_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the pool, the first bad row of the file stops the check, whichever worker sees
    a bad row first; and a row of the wrong width is reported at its physical line even
    after records that span several lines."""
    monkeypatch.setattr(contacts, "PARALLEL_FROM", 10)
    monkeypatch.setattr(contacts, "BLOCK_LINES", 5)
    body = [f'212555{n:04d},"x\ny"' if n == 3 else f"212555{n:04d},c{n}" for n in range(60)]
    body[41] = "2125550041,c,extra"
    body[50] = "12345,bad"
    path = Path(write(tmp_path, "phone,name\n" + "\n".join(body) + "\n"))
    for workers in (1, 2):
        with pytest.raises(contacts.RowError) as caught:
            check_file(path, workers)
        # Header, 41 rows before it, one of them two lines long.
        assert str(caught.value).startswith("line 44, column '#3': 3 columns")


def test_unreadable_file_after_a_bad_row(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(contacts, "BLOCK_LINES", 5)
    big = "x" * 200_000  # above the csv module's field limit
    path = Path(write(tmp_path, f"phone,name\n2125550100,a\n2125550101,{big}\n"))
    with pytest.raises(CampaignError, match=r"list\.csv, line 3: field larger than field limit"):
        check_file(path, 1)
    path = Path(write(tmp_path, f"phone,name\n2125550100,a\n1234,b\n2125550101,{big}\n"))
    with pytest.raises(contacts.RowError, match="line 3, column 'phone'"):
        check_file(path, 1)
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"phone,name\n" + b"2125550100,a\n" * 3000 + b"2125550199,Jos\xe9\n")
    for lines in (1, 5):  # with one line a block, the error comes as a block starts
        monkeypatch.setattr(contacts, "BLOCK_LINES", lines)
        with pytest.raises(CampaignError, match="is not UTF-8 text"):
            check_file(path, 1)


def test_escaped_text_and_file_order_reach_the_database(campaign: Cli, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'phone,name,notes\n2125550102,"Tab\there, back\\\\slash","a\nb\\\\c"\n'
        "2125550101,Second,\n2125550100,Third,x\n",
    )
    campaign.ok("contacts", "import", path, "--campaign", "spring")
    listed = json.loads(campaign.ok("contacts", "list", "--campaign", "spring", "--json").output)
    assert [c["phone"] for c in listed] == ["+12125550102", "+12125550101", "+12125550100"]
    assert listed[0]["name"] == "Tab\there, back\\\\slash"
    assert listed[0]["fields"] == {"notes": "a\nb\\\\c"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("phone,name\n2125550100,a\x00b\n", "line 2, column 'name': holds a NUL character"),
        ("phone,notes\n2125550100,a\x00b\n", "line 2, column 'notes': holds a NUL character"),
    ],
)
def test_nul_characters_are_bad_rows(
    campaign: Cli, clean_db: Engine, tmp_path: Path, text: str, reason: str
) -> None:
    result = campaign("contacts", "import", write(tmp_path, text), "--campaign", "spring")
    assert result.exit_code == 1
    assert reason in error_line(result.output)
    assert count(clean_db, "contacts") == 0
