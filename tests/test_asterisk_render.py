"""The rendered Asterisk configuration: deterministic, valid syntax, least privilege, every
agent and queue with its values, secrets handled; and `callcenter asterisk render` from the
database."""

from __future__ import annotations

import dataclasses
import random
import stat
from pathlib import Path

import click
import pytest

from callcenter.asterisk import conffile, files, reload, run, sample
from callcenter.asterisk.conffile import Document, Section
from callcenter.asterisk.render import (
    AGI_SCRIPTS,
    LOADED_MODULES,
    REQUIRED_MODULES,
    AgentConf,
    QueueConf,
    RenderError,
    RenderOptions,
    Trunk,
    render,
)
from callcenter.cli.asterisk_cmd import asterisk
from callcenter.config import ConfigError, Secret
from tests.conftest import Cli

BASE = Path("/srv/cc/asterisk")


def rendered(**kw: object) -> dict[str, bytes]:
    options = RenderOptions(directory=BASE, **kw)  # type: ignore[arg-type]
    return render(sample.settings(), sample.AGENTS, sample.QUEUES, sample.TRUNKS, options)


def doc(files_: dict[str, bytes], name: str) -> Document:
    return conffile.parse(files_[name].decode(), name)


def sections(d: Document, type_: str) -> dict[str, Section]:
    """pjsip.conf objects of one type, by name."""
    return {s.name: s for s in d.sections if s.get("type") == [type_]}


@pytest.fixture(scope="module")
def out() -> dict[str, bytes]:
    return rendered()


# --- the set as a whole ---------------------------------------------------------------------


def test_same_input_same_bytes_in_any_order(out: dict[str, bytes]) -> None:
    assert rendered() == out
    agents, queues, trunks = list(sample.AGENTS), list(sample.QUEUES), list(sample.TRUNKS)
    rng = random.Random(7)
    rng.shuffle(agents)
    rng.shuffle(queues)
    rng.shuffle(trunks)
    again = render(sample.settings(), agents, queues, trunks, RenderOptions(directory=BASE))
    assert again == out
    assert list(out) == sorted(out)


def test_the_expected_files(out: dict[str, bytes]) -> None:
    needed = {
        "asterisk.conf",
        "modules.conf",
        "logger.conf",
        "manager.conf",
        "pjsip.conf",
        "queues.conf",
        "musiconhold.conf",
        "cdr.conf",
        "cdr_custom.conf",
        "cel.conf",
        "cel_custom.conf",
        "rtp.conf",
        "extensions.conf",
    }
    assert needed <= set(out)
    assert any(name.startswith("dialplans/") for name in out)


def test_every_file_parses_as_asterisk_config(out: dict[str, bytes]) -> None:
    for name, data in out.items():
        text = data.decode("utf-8")
        assert text.endswith("\n"), name
        assert "\t" not in text, name
        parsed = conffile.parse(text, name)
        for section in parsed.sections:
            assert section.name, name
    plan = conffile.dialplan(out)
    assert {"from-trunk", "agents", "outbound-campaign", "queue-callback"} <= set(plan.contexts)


def test_parser_rejects_what_asterisk_would_guess_at() -> None:
    with pytest.raises(conffile.ConfError, match="before any"):
        conffile.parse("key = value\n")
    with pytest.raises(conffile.ConfError, match=":2: not a section"):
        conffile.parse("[a]\nthis is not a setting\n")
    parsed = conffile.parse("[a](!)\nk => v \\; still value ; comment\n;-- block\n--;\n")
    assert parsed.sections[0].is_template
    assert parsed.sections[0].one("k") == "v ; still value"


def test_no_render_input_leaks_a_timestamp_or_the_cwd(out: dict[str, bytes]) -> None:
    for name, data in out.items():
        assert str(Path.cwd()).encode() not in data, name


# --- manager.conf ---------------------------------------------------------------------------


def test_manager_binds_loopback_with_least_privilege_users(out: dict[str, bytes]) -> None:
    d = doc(out, "manager.conf")
    general = d.named("general")[0]
    assert general.one("enabled") == "yes"
    assert general.one("bindaddr") == "127.0.0.1"
    assert general.one("port") == "5038"
    assert general.one("timestampevents") == "yes"
    users = [s for s in d.sections if s.name != "general"]
    # The bridge's, then the IVR's and the dialer's own (ami/wanted.py).
    assert [u.name for u in users] == ["callcenter", "callcenter-ivr", "callcenter-dialer"]
    for user in users:
        assert user.one("secret") == sample.SAMPLE_AMI_SECRET
        assert user.get("deny") == ["0.0.0.0/0.0.0.0"]
        assert user.get("permit") == ["127.0.0.1/255.255.255.255"]
        # deny must come first: Asterisk applies the rules in order, the last match wins.
        keys = [e.key for e in user.entries if e.key in ("deny", "permit")]
        assert keys == ["deny", "permit"]
        write = set(user.one("write").split(","))
        assert not write & {"system", "config", "command", "all"}
    user = users[0]
    assert set(user.one("read").split(",")) == {
        "agent", "call", "dialplan", "security", "system", "user"
    }  # fmt: skip
    write = set(user.one("write").split(","))
    assert write == {"agent", "call", "originate", "reporting"}
    assert not write & {"system", "config", "command", "all"}


def test_manager_port_and_permit_follow_settings_and_options() -> None:
    settings = sample.settings({"CALLCENTER_NODES__LOCAL__PORT": "15038"})
    options = RenderOptions(directory=BASE, ami_permit=("10.0.0.0/8", "127.0.0.1"))
    d = doc(render(settings, [], [], [], options), "manager.conf")
    assert d.named("general")[0].one("port") == "15038"
    assert d.named("callcenter")[0].get("permit") == [
        "10.0.0.0/255.0.0.0",
        "127.0.0.1/255.255.255.255",
    ]


def test_refuses_to_render_without_an_ami_secret() -> None:
    settings = sample.settings({"CALLCENTER_NODES__LOCAL__SECRET": ""})
    with pytest.raises(RenderError, match=r"secret is empty: run `callcenter config init`"):
        render(settings, [], [], [])


def test_refuses_to_render_without_a_local_node() -> None:
    settings = sample.settings({"CALLCENTER_NODES__PBX1__SECRET": "x"})
    settings = dataclasses.replace(settings, nodes=settings.nodes[1:])
    with pytest.raises(RenderError, match=r"\[nodes.local\]"):
        render(settings, [], [], [])


# --- pjsip.conf -----------------------------------------------------------------------------


def test_pjsip_one_endpoint_auth_aor_per_enabled_agent(out: dict[str, bytes]) -> None:
    d = doc(out, "pjsip.conf")
    enabled = [a for a in sample.AGENTS if a.enabled]
    agents_eps = {k: v for k, v in sections(d, "endpoint").items() if k.isdigit()}
    assert set(agents_eps) == {a.extension for a in enabled}
    auths = sections(d, "auth")
    aors = sections(d, "aor")
    for agent in enabled:
        ext = agent.extension
        ep = agents_eps[ext]
        assert ep.one("context") == "agents"
        assert ep.one("auth") == ext
        assert ep.one("aors") == ext
        assert auths[ext].one("password") == agent.sip_secret
        assert auths[ext].one("username") == ext
        assert auths[ext].one("auth_type") == "digest"
        assert aors[ext].one("max_contacts") == "1"
    disabled = next(a for a in sample.AGENTS if not a.enabled)
    assert disabled.extension.encode() not in out["pjsip.conf"]
    assert disabled.sip_secret.encode() not in out["pjsip.conf"]
    # A name with a quote and a semicolon cannot break the callerid header or start a comment.
    assert agents_eps["1002"].one("callerid") == '"Bob The Builder" <1002>'


def test_pjsip_transports_loopback_udp_tcp_and_tls_only_with_a_certificate(
    out: dict[str, bytes],
) -> None:
    transports = sections(doc(out, "pjsip.conf"), "transport")
    assert {k: (v.one("protocol"), v.one("bind")) for k, v in transports.items()} == {
        "transport-udp": ("udp", "127.0.0.1:5060"),
        "transport-tcp": ("tcp", "127.0.0.1:5060"),
    }
    for name, endpoint in sections(doc(out, "pjsip.conf"), "endpoint").items():
        assert endpoint.one("media_address") == "127.0.0.1", name
        assert endpoint.one("bind_rtp_to_media_address") == "yes", name
    everywhere = sections(doc(rendered(bind_address="0.0.0.0"), "pjsip.conf"), "endpoint")
    assert not everywhere["1001"].get("media_address")
    with_tls = rendered(tls_cert_file="/etc/cc/cert.pem", tls_key_file="/etc/cc/key.pem")
    tls = sections(doc(with_tls, "pjsip.conf"), "transport")["transport-tls"]
    assert (tls.one("protocol"), tls.one("bind")) == ("tls", "127.0.0.1:5061")
    assert tls.one("cert_file") == "/etc/cc/cert.pem"


def test_pjsip_trunks_identify_auth_and_registration(out: dict[str, bytes]) -> None:
    d = doc(out, "pjsip.conf")
    provider = sections(d, "endpoint")["provider"]
    assert provider.one("context") == "from-trunk"
    assert provider.one("outbound_auth") == "provider-auth"
    assert sections(d, "auth")["provider-auth"].one("password") == "trunk;secret"
    identify = sections(d, "identify")
    assert identify["provider"].get("match") == ["192.0.2.0/24"]
    assert identify["backup"].get("match") == ["198.51.100.7"]
    registration = sections(d, "registration")
    assert set(registration) == {"provider"}
    assert registration["provider"].one("server_uri") == "sip:sip.provider.example:5060"
    assert sections(d, "endpoint")["backup"].one("transport") == "transport-tcp"


@pytest.mark.parametrize(
    ("trunk", "message"),
    [
        (Trunk("1001", "h"), "must start with a letter"),
        (Trunk("t", "bad host"), "not a host"),
        (Trunk("t", "h", dids=("12a",)), "not a number"),
        (Trunk("t", "h", register=True), "needs a username and a secret"),
        (Trunk("t", "h", transport="tls"), "needs a TLS certificate"),
        (Trunk("t", "h", codecs=("mp3",)), "unknown codec"),
    ],
)
def test_bad_trunks_are_refused(trunk: Trunk, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render(sample.settings(), [], [], [trunk])


def test_values_cannot_inject_lines_and_semicolons_are_escaped() -> None:
    evil = AgentConf("eve", "1666", "x" * 20 + "\n[evil]\ntype=endpoint")
    with pytest.raises(RenderError, match="line break"):
        render(sample.settings(), [evil], [], [])
    settings = sample.settings({"CALLCENTER_NODES__LOCAL__SECRET": "a;b"})
    text = render(settings, [], [], [])["manager.conf"].decode()
    assert "secret = a\\;b\n" in text
    assert doc({"m": text.encode()}, "m").named("callcenter")[0].one("secret") == "a;b"


def test_unicode_agent_names_are_rendered_where_text_may_be() -> None:
    agents = [
        AgentConf("Renée", "1005", "r" * 32),
        # A full name with a no-break space, a zero-width space and a right-to-left override.
        AgentConf("東京", "1006", "t" * 32, "東京\u00a0太郎\u200b\u202e;,"),
    ]
    out = render(sample.settings(), agents, [], [])
    pjsip_text = out["pjsip.conf"].decode("utf-8")
    assert "; agent Renée\n[1005]\n" in pjsip_text
    endpoints = sections(doc(out, "pjsip.conf"), "endpoint")
    # Objects are named after the extension (digits); the name is only the display name.
    assert {"1005", "1006"} <= set(endpoints)
    assert endpoints["1005"].one("callerid") == '"Renée" <1005>'
    assert endpoints["1006"].one("callerid") == '"東京 太郎," <1006>'
    assert sections(doc(out, "pjsip.conf"), "aor")["1005"].one("max_contacts") == "1"
    voicemail = doc(out, "voicemail.conf")
    assert voicemail.named("general")[0].one("charset") == "UTF-8"
    boxes = voicemail.named("callcenter")[0]
    assert boxes.one("1005") == ",Renée"
    assert boxes.one("1006") == ",東京 太郎"
    # NFC bytes: é is one code point (C3 A9), as the database holds it and QueueAdd sends it.
    assert "Renée".encode() in out["pjsip.conf"]
    assert b"Rene\xcc\x81e" not in out["pjsip.conf"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Ren|ée", "contains '|'"),
        ("Ren\u200bée", "invisible character"),
        ("Rene\u0301e", "not in Unicode NFC"),
        ("東" * 27, "81 bytes"),
    ],
)
def test_agent_names_asterisk_would_mangle_are_refused(name: str, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render(sample.settings(), [AgentConf(name, "1005", "r" * 32)], [], [])


def test_duplicate_extensions_and_weak_secrets_are_refused() -> None:
    a = AgentConf("a", "1001", "s" * 32)
    with pytest.raises(RenderError, match="share extension 1001"):
        render(sample.settings(), [a, dataclasses.replace(a, name="b")], [], [])
    with pytest.raises(RenderError, match="SIP secret"):
        render(sample.settings(), [dataclasses.replace(a, sip_secret="")], [], [])


# --- queues.conf ----------------------------------------------------------------------------


def test_queues_conf_has_every_queue_with_its_values(out: dict[str, bytes]) -> None:
    d = doc(out, "queues.conf")
    general = d.named("general")[0]
    assert general.one("persistentmembers") == "yes"
    assert general.one("autofill") == "yes"
    assert general.one("shared_lastcall") == "yes"
    assert general.one("log_membername_as_agent") == "yes"
    queues = {s.name: s for s in d.sections if s.name != "general"}
    assert set(queues) == {q.name for q in sample.QUEUES}
    yn = {True: "yes", False: "no"}
    for q in sample.QUEUES:
        s = queues[q.name]
        announce = q.announce_position or q.announce_holdtime
        assert s.one("strategy") == q.strategy
        assert s.one("timeout") == str(q.ring_seconds)
        assert s.one("retry") == str(q.retry_seconds)
        assert s.one("wrapuptime") == str(q.wrapup_seconds)
        assert s.one("servicelevel") == str(q.service_level_seconds)
        assert s.one("weight") == str(q.weight)
        assert s.one("maxlen") == str(q.max_callers)
        assert s.one("joinempty") == yn[q.join_empty]
        assert s.one("leavewhenempty") == yn[q.leave_when_empty]
        assert s.one("announce-position") == yn[q.announce_position]
        assert s.one("announce-holdtime") == yn[q.announce_holdtime]
        assert s.one("announce-frequency") == str(q.announce_frequency_seconds if announce else 0)
        assert s.one("autopause") == yn[q.autopause and q.autopause_after <= 1]
        assert s.one("ringinuse") == "no"
        assert s.one("musicclass") == q.music_class
        assert s.one("context") == "queue-exit"
        assert s.one("timeoutpriority") == "app"
        assert not s.get("member"), "members are dynamic"
    text = out["queues.conf"].decode()
    for removed in ("eventmemberstatus", "eventwhencalled", "monitor-type"):
        assert not [e for s in d.sections for e in s.entries if e.key == removed], removed
        assert f"\n{removed}" not in text


def test_queue_timeout_and_priority_are_dialplan_globals(out: dict[str, bytes]) -> None:
    plan = conffile.dialplan(out)
    for q in sample.QUEUES:
        assert plan.globals[f"QTIMEOUT_{q.name}"] == str(q.max_wait_seconds)
        assert plan.globals[f"QPRIO_{q.name}"] == str(q.priority)
    assert plan.globals["OUTBOUND_TRUNK"] == "provider"


def test_autopause_is_on_only_where_asterisk_can_honour_it() -> None:
    q = QueueConf("q", autopause=True, autopause_after=2)
    both = [q, dataclasses.replace(q, name="r", autopause_after=1)]
    d = doc(render(sample.settings(), [], both, []), "queues.conf")
    assert d.named("q")[0].one("autopause") == "no"
    assert d.named("r")[0].one("autopause") == "yes"


def test_voicemail_has_a_mailbox_per_enabled_agent_and_queue(out: dict[str, bytes]) -> None:
    boxes = doc(out, "voicemail.conf").named("callcenter")[0]
    expected = {a.extension for a in sample.AGENTS if a.enabled} | {q.name for q in sample.QUEUES}
    assert {e.key for e in boxes.entries} == expected
    assert boxes.one("1002") == ",Bob The Builder"  # no comma, quote or ; to shift the fields
    clash = QueueConf("1001")
    with pytest.raises(RenderError, match="share a mailbox"):
        render(sample.settings(), sample.AGENTS, [clash], [])


def test_music_classes_of_queues_exist(out: dict[str, bytes]) -> None:
    classes = {s.name for s in doc(out, "musiconhold.conf").sections}
    assert {q.music_class for q in sample.QUEUES} <= classes


# --- the other files ------------------------------------------------------------------------


def test_asterisk_conf_keeps_every_writable_directory_inside_the_instance(
    out: dict[str, bytes],
) -> None:
    dirs = doc(out, "asterisk.conf").named("directories")[0]
    values = {e.key: e.value for e in dirs.entries}
    for key in ("astetcdir", "astrundir", "astlogdir", "astspooldir", "astvarlibdir", "astdbdir"):
        assert Path(values[key]).is_relative_to(BASE), key
    assert values["astetcdir"] == str(BASE / "etc")
    assert "astmoddir" not in values  # Asterisk's compiled-in one
    with_dirs = rendered(module_dir="/opt/x/lib/asterisk/modules", data_dir="/opt/x/var/lib")
    values = {e.key: e.value for e in doc(with_dirs, "asterisk.conf").sections[0].entries}
    assert values["astmoddir"] == "/opt/x/lib/asterisk/modules"
    assert values["astdatadir"] == "/opt/x/var/lib"


def test_modules_conf_loads_only_the_listed_modules(out: dict[str, bytes]) -> None:
    mods = doc(out, "modules.conf").named("modules")[0]
    assert mods.one("autoload") == "no"
    assert set(mods.get("require")) == set(REQUIRED_MODULES)
    assert set(mods.get("load")) == set(LOADED_MODULES)
    assert not set(REQUIRED_MODULES) & set(LOADED_MODULES)
    assert {"app_queue.so", "res_agi.so", "chan_pjsip.so"} <= set(REQUIRED_MODULES)


def test_logger_writes_queue_log(out: dict[str, bytes]) -> None:
    general = doc(out, "logger.conf").named("general")[0]
    assert general.one("queue_log") == "yes"
    assert general.one("queue_log_to_file") == "yes"
    assert general.one("queue_log_name") == "queue_log"
    assert doc(out, "logger.conf").named("logfiles")[0].get("messages.log")


def test_rtp_ports_from_settings() -> None:
    settings = sample.settings(
        {"CALLCENTER_ASTERISK__RTP_START": "30000", "CALLCENTER_ASTERISK__RTP_END": "30100"}
    )
    general = doc(render(settings, [], [], []), "rtp.conf").named("general")[0]
    assert (general.one("rtpstart"), general.one("rtpend")) == ("30000", "30100")
    # An odd start is refused when the settings are read, before any rendering.
    with pytest.raises(ConfigError, match="rtp_start must be even"):
        sample.settings({"CALLCENTER_ASTERISK__RTP_START": "10001"})


def test_agi_scripts_list_is_the_contract() -> None:
    assert {
        "ivr",
        "agent-login",
        "agent-logout",
        "agent-pause",
        "agent-unpause",
        "survey",
        "callback",
    } == AGI_SCRIPTS


def test_a_console_socket_path_too_long_for_unix_is_refused() -> None:
    with pytest.raises(RenderError, match="longer than a UNIX socket path"):
        render(sample.settings(), [], [], [], RenderOptions(directory=Path("/" + "d" * 100)))


def test_missing_templates_say_where_they_were_expected(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"templates are missing: expected .*asterisk-config"):
        render(sample.settings(), [], [], [], template_root=tmp_path)


# --- files, reload plan, binary -------------------------------------------------------------


def test_write_set_modes_and_changes(tmp_path: Path, out: dict[str, bytes]) -> None:
    target = tmp_path / "etc"
    assert files.changed_files(out, target) == sorted(out)
    files.write_set(out, target)
    for name in out:
        mode = stat.S_IMODE((target / name).stat().st_mode)
        assert mode == (0o640 if name in ("manager.conf", "pjsip.conf") else 0o644), name
        assert (target / name).read_bytes() == out[name]
    assert files.changed_files(out, target) == []
    changed = {**out, "queues.conf": out["queues.conf"] + b"\n"}
    assert files.changed_files(changed, target) == ["queues.conf"]
    assert not list(target.glob(".*"))  # no temporary files left behind
    with pytest.raises(RenderError, match="outside"):
        files.write_set({"../escape.conf": b""}, target)


def test_reload_plan_maps_files_to_modules() -> None:
    plan = reload.plan(["queues.conf", "dialplans/inbound.conf", "extensions.conf", "pjsip.conf"])
    assert plan.modules == ("app_queue.so", "pbx_config.so", "res_pjsip.so")
    assert plan.restart_for == ()
    assert reload.plan(["modules.conf", "new.conf"]).restart_for == ("modules.conf", "new.conf")
    assert reload.plan(["manager.conf"]).modules == ("manager",)


def test_every_rendered_file_has_a_reload_rule(out: dict[str, bytes]) -> None:
    for name in out:
        assert name.startswith("dialplans/") or name in reload.RELOAD_MODULE, name


def test_binary_lookup_explains_how_to_install(tmp_path: Path) -> None:
    settings = sample.settings()
    with pytest.raises(run.AsteriskNotFound, match="build Asterisk 20 or 22 from source"):
        run.find_binary(settings, {"PATH": str(tmp_path)}, sbin_dirs=())
    with pytest.raises(run.AsteriskNotFound, match="ASTERISK_BIN = /nope"):
        run.find_binary(settings, {"ASTERISK_BIN": "/nope", "PATH": ""})
    fake = tmp_path / "asterisk"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert run.find_binary(settings, {"PATH": str(tmp_path)}, sbin_dirs=()) == fake
    assert run.command_line(fake, tmp_path, 2) == [
        str(fake),
        "-C",
        str(tmp_path / "etc" / "asterisk.conf"),
        "-f",
        "-n",
        "-vv",
    ]


def test_private_instance_only_for_a_local_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "asterisk"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ASTERISK_BIN", str(fake))
    here = {"CALLCENTER_ASTERISK__DIRECTORY": str(tmp_path / "inst")}
    binary, why = run.private_instance(sample.settings(here))
    assert binary == fake
    assert "starting a private Asterisk" in why
    remote = sample.settings({**here, "CALLCENTER_NODES__LOCAL__HOST": "10.1.2.3"})
    assert run.private_instance(remote) == (
        None,
        "[nodes.local] is at 10.1.2.3: an external Asterisk, none is started",
    )
    monkeypatch.setenv("ASTERISK_BIN", str(tmp_path / "missing"))
    binary, why = run.private_instance(sample.settings(here))
    assert binary is None
    assert "no executable there" in why


def test_installation_dirs_from_the_prefix(tmp_path: Path) -> None:
    (tmp_path / "sbin").mkdir()
    binary = tmp_path / "sbin" / "asterisk"
    binary.write_text("")
    assert run.installation_dirs(binary) == ("", "")
    mods = tmp_path / "lib" / "asterisk" / "modules"
    mods.mkdir(parents=True)
    (mods / "app_queue.so").write_text("")
    (tmp_path / "var" / "lib" / "asterisk" / "sounds").mkdir(parents=True)
    assert run.installation_dirs(binary) == (str(mods), str(tmp_path / "var/lib/asterisk"))


# --- through the CLI, from the database -----------------------------------------------------


@pytest.fixture
def asterisk_cli(run_cli: Cli) -> Cli:
    """The CLI (whose `asterisk` group main.py registers)."""
    run_cli.env["CALLCENTER_NODES__LOCAL__SECRET"] = "db-test-ami-secret"
    return run_cli


def test_cli_renders_agents_and_queues_from_the_database(asterisk_cli: Cli, tmp_path: Path) -> None:
    asterisk_cli.ok("queues", "add", "billing", "--max-wait", "120", "--strategy", "linear")
    asterisk_cli.ok("agents", "add", "dave", "-e", "2001", "--pin", "1234", "--queue", "billing")
    asterisk_cli.ok("agents", "add", "erin", "-e", "2002", "--pin", "1234")
    asterisk_cli.ok("agents", "update", "erin", "--disable")
    out_dir = tmp_path / "set"
    result = asterisk_cli.ok("asterisk", "render", "--out", str(out_dir))
    assert "wrote" in result.output
    got = {str(p.relative_to(out_dir)): p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
    pjsip = conffile.parse(got["pjsip.conf"].decode(), "pjsip.conf")
    endpoints = {k for k in sections(pjsip, "endpoint") if k.isdigit()}
    assert endpoints == {"2001"}
    secret = sections(pjsip, "auth")["2001"].one("password")
    assert len(secret) >= 32
    queues = conffile.parse(got["queues.conf"].decode(), "queues.conf")
    assert queues.named("billing")[0].one("strategy") == "linear"
    assert conffile.dialplan(got).globals["QTIMEOUT_billing"] == "120"
    assert stat.S_IMODE((out_dir / "pjsip.conf").stat().st_mode) == 0o640
    manager = conffile.parse(got["manager.conf"].decode(), "manager.conf")
    assert manager.named("callcenter")[0].one("secret") == "db-test-ami-secret"
    # Rendering again from the same database gives the same bytes.
    asterisk_cli.ok("asterisk", "render", "--out", str(tmp_path / "again"))
    assert files.changed_files(got, tmp_path / "again") == []


def test_cli_refuses_without_secret_in_one_line(asterisk_cli: Cli, tmp_path: Path) -> None:
    result = asterisk_cli(
        "asterisk",
        "render",
        "--out",
        str(tmp_path / "x"),
        env={"CALLCENTER_NODES__LOCAL__SECRET": ""},
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    assert "callcenter config init" in lines[0]
    assert not (tmp_path / "x").exists()


def test_cli_run_without_asterisk_says_how_to_install(asterisk_cli: Cli, tmp_path: Path) -> None:
    result = asterisk_cli(
        "asterisk",
        "run",
        env={
            # A binary setting that points nowhere: never finds (and execs) a real Asterisk.
            "CALLCENTER_ASTERISK__BINARY": str(tmp_path / "no-asterisk"),
            "CALLCENTER_ASTERISK__DIRECTORY": str(tmp_path / "inst"),
        },
    )
    assert result.exit_code == 1
    assert "no executable there" in result.output
    assert "Debian 12 has no package, so build Asterisk 20 or 22 from source" in result.output
    assert "asterisk-core-sounds-en-gsm" in result.output


def test_cli_reload_without_running_asterisk_is_an_error_and_writes_nothing(
    asterisk_cli: Cli, tmp_path: Path
) -> None:
    """Nothing to reload is exit 1 with one line (a script must not take it for success);
    `callcenter run` renders afresh when it starts Asterisk, so nothing is written either."""
    env = {"CALLCENTER_ASTERISK__DIRECTORY": str(tmp_path / "inst")}
    asterisk_cli.ok("queues", "add", "billing")
    result = asterisk_cli("asterisk", "reload", env=env)
    assert result.exit_code == 1, result.output
    (line,) = result.output.splitlines()
    assert line.startswith("Error: ")
    assert "not running" in line or "Asterisk is not installed" in line
    assert not (tmp_path / "inst").exists()
    assert isinstance(asterisk, click.Group)
    assert set(asterisk.commands) == {"render", "run", "reload"}


def test_secret_default_of_trunk_is_empty() -> None:
    assert not Trunk("t", "h").secret
    assert isinstance(Trunk("t", "h", secret=Secret("x")).secret, Secret)
