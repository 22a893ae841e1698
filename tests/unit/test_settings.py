"""Settings merge: precedence, camelCase keys, environment, and bad values replaced by defaults."""

from __future__ import annotations

import json
from pathlib import Path

from lsp_server.settings import Settings, env_overrides, merge


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    settings, problems = merge(environ={}, config_file=tmp_path / "missing.json")
    assert settings == Settings()
    assert problems == []


def test_later_layers_win_and_environment_wins_over_all(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"maxNewTokens": 10, "device": "cpu", "logLevel": "debug"}))
    settings, problems = merge(
        {"maxNewTokens": 20, "contextBudget": 512},
        {"flashcode": {"maxNewTokens": 30, "cache": {"enabled": False}}},
        environ={"FLASHCODE_CONTEXT_BUDGET": "2048", "FLASHCODE_CACHE__MAX_SIZE_MB": "64"},
        config_file=config,
    )
    assert problems == []
    assert settings.max_new_tokens == 30  # workspace layer over initializationOptions over file
    assert settings.device == "cpu"  # only the file set it
    assert settings.log_level == "debug"
    assert settings.context_budget == 2048  # the environment wins
    assert settings.cache.enabled is False
    assert settings.cache.max_size_mb == 64


def test_bad_values_are_reported_and_replaced_by_defaults(tmp_path: Path) -> None:
    settings, problems = merge(
        {"maxNewTokens": "lots", "device": "tpu", "contextBudget": 5, "colour": "red"},
        environ={},
        config_file=tmp_path / "none.json",
    )
    assert settings.max_new_tokens == Settings().max_new_tokens
    assert settings.device == "auto"
    assert settings.context_budget == Settings().context_budget
    text = "; ".join(problems)
    assert "maxNewTokens" in text and "device" in text and "contextBudget" in text
    assert "unknown setting 'colour'" in text


def test_a_broken_config_file_is_ignored_with_a_message(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("{not json")
    settings, problems = merge(environ={}, config_file=config)
    assert settings == Settings()
    assert len(problems) == 1 and str(config) in problems[0]


def test_environment_names_map_to_nested_camel_case() -> None:
    assert env_overrides(
        {"FLASHCODE_MODEL_PATH": "/m", "FLASHCODE_TESTS__RUN_GENERATED": "0", "HOME": "/root"}
    ) == {"modelPath": "/m", "tests": {"runGenerated": "0"}}


def test_language_filter() -> None:
    assert Settings().language_enabled("python")
    only_rust = Settings(enabled_languages=["rust"])
    assert only_rust.language_enabled("rust") and not only_rust.language_enabled("python")


def test_unknown_environment_names_are_not_reported_to_the_editor(tmp_path: Path) -> None:
    settings, problems = merge(
        environ={"FLASHCODE_TEST_MODEL": "/m", "FLASHCODE_MAX_NEW_TOKENS": "many"},
        config_file=tmp_path / "none.json",
    )
    assert settings.max_new_tokens == Settings().max_new_tokens
    assert len(problems) == 1 and "maxNewTokens" in problems[0]  # a bad value still is


def test_an_unknown_fim_template_is_reported_and_the_tokenizer_decides(tmp_path: Path) -> None:
    settings, problems = merge(
        {"fimTemplate": "gpt"}, environ={}, config_file=tmp_path / "none.json"
    )
    assert settings.fim_template == ""
    assert problems == [
        'fimTemplate must be one of "", qwen2.5-coder, starcoder, deepseek-coder, codellama,'
        " codegemma, not 'gpt'"
    ]


def test_a_known_fim_template_is_kept(tmp_path: Path) -> None:
    settings, problems = merge(
        {"fimTemplate": "starcoder"}, environ={}, config_file=tmp_path / "none.json"
    )
    assert settings.fim_template == "starcoder"
    assert problems == []


def test_a_test_timeout_of_zero_is_reported_and_the_default_used(tmp_path: Path) -> None:
    settings, problems = merge(
        {"tests": {"timeoutSeconds": 0}}, environ={}, config_file=tmp_path / "none.json"
    )
    assert settings.tests.timeout_seconds == Settings().tests.timeout_seconds
    assert problems == ["tests.timeoutSeconds must be between 1 and 3600, not 0"]


def test_int8_complexity_and_cache_size_outside_their_ranges_get_defaults(tmp_path: Path) -> None:
    settings, problems = merge(
        {"int8Complexity": -1},
        environ={"FLASHCODE_CACHE__MAX_SIZE_MB": "0"},
        config_file=tmp_path / "none.json",
    )
    assert settings.int8_complexity == Settings().int8_complexity
    assert settings.cache.max_size_mb == Settings().cache.max_size_mb
    assert problems == [
        "int8Complexity must be between 0 and 1000, not -1",
        "cache.maxSizeMb must be between 1 and 65536, not 0",
    ]


def test_a_workspace_index_budget_outside_its_range_gets_the_default(tmp_path: Path) -> None:
    settings, problems = merge(
        {"workspace": {"indexBudgetMb": 5, "mixing": False}},
        environ={"FLASHCODE_WORKSPACE__ENABLED": "0"},
        config_file=tmp_path / "none.json",
    )
    assert settings.workspace.index_budget_mb == 200
    assert (settings.workspace.enabled, settings.workspace.mixing) == (False, False)
    assert problems == ["workspace.indexBudgetMb must be between 16 and 4096, not 5"]


def test_the_ends_of_a_range_are_allowed(tmp_path: Path) -> None:
    settings, problems = merge(
        {"int8Complexity": 0, "cache": {"maxSizeMb": 1}, "tests": {"timeoutSeconds": 3600}},
        environ={},
        config_file=tmp_path / "none.json",
    )
    assert problems == []
    assert (settings.int8_complexity, settings.cache.max_size_mb) == (0, 1)
    assert settings.tests.timeout_seconds == 3600


def test_a_bad_value_in_a_later_layer_gives_the_default_not_an_earlier_value(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"device": "cpu", "logLevel": "debug"}))
    settings, problems = merge(
        {"device": "tpu", "logLevel": "loud"}, environ={}, config_file=config
    )
    assert (settings.device, settings.log_level) == ("auto", "info")
    assert problems == [
        "device must be one of auto, cpu, cuda, not 'tpu'",
        "logLevel must be one of error, warning, info, debug, not 'loud'",
    ]


def test_the_usage_price_takes_any_number_from_json_or_the_environment(tmp_path: Path) -> None:
    none = tmp_path / "none.json"
    settings, problems = merge(
        {"usage": {"pricePerMillionTokens": 2}}, environ={}, config_file=none
    )
    assert problems == [] and settings.usage.price_per_million_tokens == 2.0
    settings, problems = merge(
        environ={
            "FLASHCODE_USAGE__PRICE_PER_MILLION_TOKENS": "0.15",
            "FLASHCODE_USAGE__ENABLED": "0",
        },
        config_file=none,
    )
    assert problems == []
    assert (settings.usage.price_per_million_tokens, settings.usage.enabled) == (0.15, False)


def test_a_price_that_is_no_number_or_out_of_range_is_reported_and_the_default_used(
    tmp_path: Path,
) -> None:
    for bad in ("cheap", -1, 5000, "nan", True):
        settings, problems = merge(
            {"usage": {"pricePerMillionTokens": bad}}, environ={}, config_file=tmp_path / "n.json"
        )
        assert settings.usage.price_per_million_tokens == 0.30, bad
        assert len(problems) == 1 and "usage.pricePerMillionTokens" in problems[0], bad
