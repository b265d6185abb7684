"""Settings: defaults, the TOML file, environment overrides, and errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from callcenter import config

#: No settings file: a callcenter.toml in the working directory must not change the results.
NO_FILE = {"CALLCENTER_CONFIG": ""}


def test_defaults_point_at_local_services() -> None:
    s = config.load(environ=NO_FILE)
    assert s.database.url == "postgresql+psycopg://postgres@127.0.0.1:5432/callcenter"
    assert (s.mqtt.host, s.mqtt.port) == ("127.0.0.1", 1883)
    assert (s.agi.host, s.agi.port) == ("127.0.0.1", 4573)
    assert [n.name for n in s.nodes] == ["local"]
    assert s.source == "defaults"


def test_example_is_valid_and_matches_defaults(tmp_path: Path) -> None:
    path = tmp_path / "cc.toml"
    path.write_text(config.EXAMPLE)
    tomllib.loads(config.EXAMPLE)
    loaded = config.load(path, environ=NO_FILE)
    defaults = config.load(environ=NO_FILE)
    assert loaded.source == str(path)
    for section in ("database", "mqtt", "agi", "wallboard", "site", "reporting", "asterisk"):
        assert getattr(loaded, section) == getattr(defaults, section), section
    assert loaded.nodes == defaults.nodes


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "cc.toml"
    path.write_text(
        '[site]\ntimezone = "Europe/Madrid"\n'
        '[nodes.pbx1]\nhost = "10.0.0.5"\nsecret = "from-file"\n'
        "[nodes.pbx2]\nport = 5039\n"
        "[mqtt]\nport = 1884\n"
    )
    env = {
        "CALLCENTER_CONFIG": str(path),
        "CALLCENTER_MQTT__PORT": "1885",
        "CALLCENTER_NODES__PBX1__SECRET": "from-env",
        "CALLCENTER_REPORTING__ABANDONS_COUNT_AGAINST_SL": "false",
        "UNRELATED": "x",
    }
    s = config.load(environ=env)
    assert s.site.timezone == "Europe/Madrid"
    assert s.mqtt.port == 1885
    assert s.node("pbx1").host == "10.0.0.5"
    assert s.node("pbx1").secret.reveal() == "from-env"
    assert s.node("pbx2").port == 5039
    assert s.reporting.abandons_count_against_sl is False


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[mqtt]\nport = 70000\n", "mqtt.port = 70000"),
        ('[mqtt]\nport = "x"\n', "mqtt.port = 'x' is not a whole number"),
        ('[site]\ntimezone = "Mars/Base"\n', "site.timezone = 'Mars/Base'"),
        ("[site]\ncolour = 1\n", "unknown setting 'site.colour'"),
        ("[bogus]\nx = 1\n", "unknown setting 'bogus'"),
        ('[database]\nurl = "mysql://x"\n', "database.url"),
        ("[nodes.PBX]\nhost = 'a'\n", "name 'PBX' in [nodes]"),
        ("[trunks.t1]\nport = 5060\n", "trunks.t1.host must name the provider"),
        ('[trunks.t1]\nhost = "h"\ntransport = "carrier-pigeon"\n', "is not udp, tcp or tls"),
        ('[trunks.t1]\nhost = "h"\ndids = 123\n', "is not a list of strings"),
        ("[asterisk]\nrtp_start = 10001\n", "asterisk.rtp_start must be even"),
        ("[agi]\nmax_sessions = 0\n", "agi.max_sessions = 0 must be greater than 0"),
        ("nodes = 3\n", "nodes must be a table"),
    ],
)
def test_bad_value_names_key_and_file(tmp_path: Path, toml: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ=NO_FILE)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(config.ConfigError, match="environment CALLCENTER_AGI__PORT"):
        config.load(environ={"CALLCENTER_AGI__PORT": "many"})


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="no such configuration file"):
        config.load(tmp_path / "nope.toml", environ=NO_FILE)
    broken = tmp_path / "broken.toml"
    broken.write_text("[site\n")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(broken, environ=NO_FILE)


def test_secrets_never_show() -> None:
    s = config.load(
        environ={
            "CALLCENTER_NODES__LOCAL__SECRET": "hunter2",
            "CALLCENTER_MQTT__PASSWORD": "mqttpw",
            "CALLCENTER_DATABASE__URL": "postgresql://u:dbpw@127.0.0.1/x",
        }
    )
    text = repr(s) + str(s) + str(s.node("local").secret) + s.database.display_url()
    for secret in ("hunter2", "mqttpw", "dbpw"):
        assert secret not in text
    assert s.node("local").secret.reveal() == "hunter2"


def test_trunks_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "cc.toml"
    path.write_text(
        '[trunks.provider]\nhost = "sip.example.net"\ndids = ["+34910000000"]\n'
        'match = ["203.0.113.0/24"]\n'
    )
    s = config.load(
        path,
        environ={
            "CALLCENTER_TRUNKS__PROVIDER__SECRET": "tr-secret",
            "CALLCENTER_ASTERISK__AMI_PERMIT": "127.0.0.1/32, 10.0.0.0/8",
        },
    )
    (trunk,) = s.trunks
    assert (trunk.name, trunk.host, trunk.dids) == (
        "provider",
        "sip.example.net",
        ("+34910000000",),
    )
    assert trunk.secret.reveal() == "tr-secret"
    assert "tr-secret" not in repr(s)
    assert s.asterisk.ami_permit == ("127.0.0.1/32", "10.0.0.0/8")


def test_unknown_node_lookup() -> None:
    with pytest.raises(config.ConfigError, match="no Asterisk node named 'x'"):
        config.load(environ=NO_FILE).node("x")


def test_local_file_is_found_unless_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert config.load(environ={}).source == "defaults"
    (tmp_path / "callcenter.toml").write_text("[agi]\nport = 4600\n")
    assert config.load(environ={}).agi.port == 4600
    assert config.load(environ={"CALLCENTER_CONFIG": ""}).agi.port == 4573


def test_init_file_has_fresh_secrets(tmp_path: Path) -> None:
    one = config.init_file()
    two = config.init_file()
    assert one != two
    path = tmp_path / "cc.toml"
    path.write_text(one)
    s = config.load(path, environ=NO_FILE)
    assert len(s.node("local").secret.reveal()) >= 32
    assert len(s.wallboard.secret_key.reveal()) >= 40
