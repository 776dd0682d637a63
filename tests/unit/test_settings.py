import re
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import load_settings, render_example, setting_fields


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_then_file_then_environment(tmp_path: Path) -> None:
    cfg = write(tmp_path / "f.toml", "[queue]\nfal_concurrency = 3\nuser_max_queued = 7\n")
    s = load_settings(cfg, environ={"FLEXBOT_USER_MAX_QUEUED": "9"})
    assert s.fal_concurrency == 3
    assert s.user_max_queued == 9
    assert s.user_max_running == 1
    assert s.sources["fal_concurrency"] == str(cfg)
    assert s.sources["user_max_queued"] == "FLEXBOT_USER_MAX_QUEUED"
    assert s.sources["user_max_running"] == "default"


def test_config_path_from_environment(tmp_path: Path) -> None:
    cfg = write(tmp_path / "f.toml", 'log_level = "debug"\n')
    assert load_settings(environ={"FLEXBOT_CONFIG": str(cfg)}).log_level == "DEBUG"


def test_money_settings_are_dollars_in_micros(tmp_path: Path) -> None:
    cfg = write(tmp_path / "f.toml", 'user_daily_cap = 2.5\nguild_monthly_cap = "unlimited"\n')
    s = load_settings(cfg, environ={"FLEXBOT_PRICE_PER_MEGAPIXEL": "$0.04"})
    assert s.user_daily_cap == 2_500_000
    assert s.guild_monthly_cap is None
    assert s.price_per_megapixel == 40_000


@pytest.mark.parametrize(
    ("env", "key", "fragment"),
    [
        ({"FLEXBOT_FAL_CONCURRENCY": "0"}, "fal_concurrency", "from 1 to 64"),
        ({"FLEXBOT_FAL_CONCURRENCY": "four"}, "fal_concurrency", "an integer"),
        ({"FLEXBOT_LOG_LEVEL": "loud"}, "log_level", "one of DEBUG"),
        ({"FLEXBOT_USER_DAILY_CAP": "-1"}, "user_daily_cap", "dollar amount"),
        ({"FLEXBOT_NO_SUCH_THING": "1"}, "no_such_thing", "a known setting"),
    ],
)
def test_wrong_value_names_key_source_value_and_allowed(
    env: dict[str, str], key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ=env)
    e = err.value
    assert e.key == key
    assert e.source == "FLEXBOT_" + key.upper()
    assert fragment in e.allowed
    assert repr(next(iter(env.values()))) in str(e)


def test_wrong_value_in_file_names_the_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "f.toml", "[images]\nmax_input_megapixels = 100\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    assert err.value.source == str(cfg)
    assert "max_input_megapixels" in str(err.value)


def test_secrets_are_refused_in_the_config_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "f.toml", 'FAL_KEY = "abc123secret"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    assert "abc123secret" not in str(err.value)


def test_secrets_from_environment_beat_secrets_file(tmp_path: Path) -> None:
    secrets = write(tmp_path / "secrets.toml", 'DISCORD_TOKEN = "from-file"\nFAL_KEY = "k1"\n')
    s = load_settings(environ={"FLEXBOT_SECRETS_FILE": str(secrets), "FAL_KEY": "k2"})
    assert s.discord_token is not None
    assert s.discord_token.reveal() == "from-file"
    assert s.fal_key is not None
    assert s.fal_key.reveal() == "k2"
    assert "from-file" not in repr(s)
    assert "k2" not in repr(s)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="an existing file"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_example_file_documents_every_setting_with_its_default() -> None:
    example = Path(__file__).parents[2] / "config" / "flexbot.example.toml"
    text = example.read_text(encoding="utf-8")
    assert text == render_example(), "regenerate with: flexbot config-example > " + str(example)
    for f in setting_fields():
        assert f"# {f.name} = " in text


def test_example_file_values_load_when_uncommented(tmp_path: Path) -> None:
    setting_line = re.compile(r"^# [a-z_]+ = ")
    lines = [
        line[2:] if setting_line.match(line) else line for line in render_example().splitlines()
    ]
    cfg = write(tmp_path / "all.toml", "\n".join(lines))
    defaults = load_settings(environ={})
    loaded = load_settings(cfg, environ={})
    for f in setting_fields():
        assert getattr(loaded, f.name) == getattr(defaults, f.name), f.name
