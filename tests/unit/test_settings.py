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
    assert s.user_max_running == 64
    assert s.sources["fal_concurrency"] == str(cfg)
    assert s.sources["user_max_queued"] == "FLEXBOT_USER_MAX_QUEUED"
    assert s.sources["user_max_running"] == "default"


def test_config_path_from_environment(tmp_path: Path) -> None:
    cfg = write(tmp_path / "f.toml", '[general]\nlog_level = "debug"\n')
    assert load_settings(environ={"FLEXBOT_CONFIG": str(cfg)}).log_level == "DEBUG"


def test_money_settings_are_dollars_in_micros(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "f.toml", '[budgets]\nuser_daily_cap = 2.5\nguild_monthly_cap = "unlimited"\n'
    )
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


def test_unknown_environment_setting_is_named_with_a_suggestion_but_not_echoed() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"FLEXBOT_USER_MAX_QEUED": "v4lue-0f-unkn0wn"})
    assert err.value.key == "user_max_qeued"
    assert err.value.source == "FLEXBOT_USER_MAX_QEUED"
    assert "did you mean user_max_queued?" in str(err.value)
    assert "v4lue-0f-unkn0wn" not in str(err.value)


def test_each_key_is_read_only_from_its_own_section(tmp_path: Path) -> None:
    good = write(tmp_path / "good.toml", '[fal]\nfal_app_id = "fal-ai/other"\n')
    assert load_settings(good, environ={}).fal_app_id == "fal-ai/other"

    wrong = write(tmp_path / "wrong.toml", '[queue]\nfal_app_id = "fal-ai/other"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(wrong, environ={})
    assert err.value.key == "fal_app_id"
    assert err.value.source == f"{wrong} [queue]"
    assert "only in [fal], not [queue]" in str(err.value)


def test_top_level_keys_are_refused_naming_their_section(tmp_path: Path) -> None:
    flat = write(tmp_path / "flat.toml", 'fal_app_id = "fal-ai/other"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(flat, environ={})
    assert err.value.key == "fal_app_id"
    assert err.value.source == f"{flat} (top level)"
    assert "[fal]" in err.value.allowed


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("[extras]\nfal_app_id = 1\n", "extras", "[budgets]"),
        ("[queue]\nuser_max_qeued = 3\n", "user_max_qeued", "did you mean user_max_queued?"),
    ],
)
def test_unknown_sections_and_keys_in_the_file_are_refused(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    cfg = write(tmp_path / "f.toml", text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    assert err.value.key == key
    assert fragment in str(err.value)


TOKEN = "MTIz.fake-token-Zm9vYmFy"


@pytest.mark.parametrize(
    ("env", "config", "secrets", "key", "fragment"),
    [
        (
            {"FLEXBOT_DISCORD_TOKEN": TOKEN},
            None,
            None,
            "discord_token",
            "FLEXBOT_DISCORD_TOKEN is not a setting; secrets go in DISCORD_TOKEN (environment)",
        ),
        ({"FLEXBOT_FAL_KEY": TOKEN}, None, None, "fal_key", "go in FAL_KEY (environment)"),
        ({"FLEXBOT_OPENAI_API_KEY": TOKEN}, None, None, "openai_api_key", "never go here"),
        ({"FLEXBOT_NO_SUCH_THING": TOKEN}, None, None, "no_such_thing", "a known setting"),
        # A token pasted into the variable that should name the secrets file.
        ({"FLEXBOT_SECRETS_FILE": TOKEN}, None, None, "secrets_file", "an existing file"),
        ({}, f'DISCORD_TOKEN = "{TOKEN}"\n', None, "DISCORD_TOKEN", "never go in the config"),
        ({}, f'[discord]\ndiscord_token = "{TOKEN}"\n', None, "discord_token", "DISCORD_TOKEN"),
        ({}, f'[fal]\nfal_key = "{TOKEN}"\n', None, "fal_key", "go in FAL_KEY (environment)"),
        ({}, f'[fal]\nadmin_password = "{TOKEN}"\n', None, "admin_password", "never go here"),
        ({}, f'[secrets]\nFAL_KEY = "{TOKEN}"\n', None, "secrets", "never go here"),
        ({}, f'[extras]\nnote = "{TOKEN}"\n', None, "extras", "one of the tables"),
        ({}, f'[general]\nsecrets_file = ["{TOKEN}"]\n', None, "secrets_file", "a path"),
        ({}, None, f'discord_token = "{TOKEN}"\n', "discord_token", "DISCORD_TOKEN or FAL_KEY"),
        ({}, None, f'FAL_KEY = ["{TOKEN}"]\n', "FAL_KEY", "a quoted string"),
        ({}, None, f"FAL_KEY = {TOKEN}\n", "secrets_file", "valid TOML"),
    ],
)
def test_a_secret_in_the_wrong_place_is_refused_without_echoing_it(
    tmp_path: Path,
    env: dict[str, str],
    config: str | None,
    secrets: str | None,
    key: str,
    fragment: str,
) -> None:
    env = dict(env)
    if secrets is not None:
        env["FLEXBOT_SECRETS_FILE"] = str(write(tmp_path / "secrets.toml", secrets))
    cfg = write(tmp_path / "f.toml", config) if config is not None else None
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ=env)
    assert err.value.key == key
    assert fragment in str(err.value)
    assert TOKEN not in str(err.value)
    assert TOKEN not in repr(err.value.value)


def test_max_credit_grant_is_a_dollar_budget_setting(tmp_path: Path) -> None:
    assert load_settings(environ={}).max_credit_grant == 20_000_000
    cfg = write(tmp_path / "f.toml", '[budgets]\nmax_credit_grant = "7.50"\n')
    assert load_settings(cfg, environ={}).max_credit_grant == 7_500_000
    with pytest.raises(ConfigError, match="dollar amount"):
        load_settings(environ={"FLEXBOT_MAX_CREDIT_GRANT": "lots"})


def test_example_file_tells_operators_caps_are_ceilings() -> None:
    text = render_example()
    for name in (
        "user_daily_cap",
        "user_monthly_cap",
        "guild_monthly_cap",
        "user_max_queued",
        "user_max_running",
        "max_credit_grant",
    ):
        doc = text.split(f"# {name} = ")[0].splitlines()[-1]
        assert "ceiling" in doc, name
        assert "/flexadmin" in doc, name


def test_server_admins_see_their_limits_but_no_paths_urls_hosts_or_guild_ids(
    tmp_path: Path,
) -> None:
    secrets = write(tmp_path / "secrets.toml", f'FAL_KEY = "{TOKEN}"\n')
    cfg = write(
        tmp_path / "f.toml",
        '[budgets]\nuser_daily_cap = "2.50"\n[discord]\ndiscord_sync_guilds = [424242]\n',
    )
    s = load_settings(
        cfg,
        environ={
            "FLEXBOT_SECRETS_FILE": str(secrets),
            "FLEXBOT_DATA_DIR": str(tmp_path / "data"),
            "FLEXBOT_DISCORD_API_BASE": "http://proxy.internal:8080/api/v10",
            "FLEXBOT_USER_MAX_QUEUED": "4",
        },
    )
    rows = {key: (value, source) for key, value, source in s.describe_for_admins()}
    for hidden in (
        "secrets_file",
        "data_dir",
        "discord_api_base",
        "discord_gateway_url",
        "fal_queue_url",
        "fal_rest_url",
        "discord_sync_guilds",
        "health_host",
        "health_port",
        "fal_key",
        "discord_token",
    ):
        assert hidden not in rows
    assert rows["user_daily_cap"] == ("$2.50", "config file")
    assert rows["user_max_queued"] == ("4", "environment")
    assert rows["max_credit_grant"] == ("$20.00", "default")
    shown = repr(rows)
    for leak in (str(tmp_path), TOKEN, "proxy.internal", "424242"):
        assert leak not in shown
