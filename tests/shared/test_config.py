"""Configuration: file < environment; production refuses unsafe secrets."""
from __future__ import annotations

import json

import pytest

from crm.config import DEV_JWT_SECRET, ConfigError, Settings


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"MONGO_DB": "from_file", "PORT": 4100, "JWT_SECRET": "file-secret"}))
    monkeypatch.setenv("CRM_CONFIG_FILE", str(path))
    for key in ("MONGO_DB", "PORT", "JWT_SECRET", "ENV", "MONGO_URI", "MONGO_URI_SECRET_NAME", "JWT_SECRET_NAME",
                "VENDOR_API_KEY", "WEBHOOK_SECRET", "VENDOR_API_KEY_NAME", "WEBHOOK_SECRET_NAME"):
        monkeypatch.delenv(key, raising=False)
    return path


def test_file_values_are_used(config_file):
    settings = Settings()
    assert settings.mongo_db == "from_file" and settings.port == 4100


def test_environment_overrides_file(config_file, monkeypatch):
    monkeypatch.setenv("MONGO_DB", "from_env")
    assert Settings().mongo_db == "from_env"


def test_sample_config_keys_are_settings():
    from pathlib import Path

    sample = json.loads((Path(__file__).parents[2] / "samplecfg" / "config.json").read_text())
    assert {key.lower() for key in sample} <= set(Settings.model_fields)


@pytest.mark.parametrize("stage", ["production", "staging"])
@pytest.mark.parametrize("secret", [DEV_JWT_SECRET, "short"])
def test_every_deployed_stage_refuses_default_or_weak_jwt_secret(config_file, monkeypatch, secret, stage):
    """Review finding: only production refused them; a staging stack signed tokens with the development key."""
    monkeypatch.setenv("ENV", stage)
    monkeypatch.setenv("MONGO_URI", "mongodb+srv://cluster.example.net/")
    monkeypatch.setenv("JWT_SECRET", secret)
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Settings()


PRODUCTION = {"ENV": "production", "JWT_SECRET": "j" * 40, "MONGO_URI": "mongodb+srv://user:pw@cluster.example.net/",
              "VENDOR_API_KEY": "v" * 40, "WEBHOOK_SECRET": "w" * 40}


def test_production_accepts_real_secrets_and_hides_them(config_file, monkeypatch):
    for key, value in PRODUCTION.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.is_deployed and settings.secret("webhook_secret") == "w" * 40
    for secret in ("pw@", "j" * 40, "v" * 40, "w" * 40):
        assert secret not in repr(settings)


@pytest.mark.parametrize("key", ["VENDOR_API_KEY", "WEBHOOK_SECRET"])
@pytest.mark.parametrize("value", ["dev-only-vendor-key", "dev-only-webhook-secret", "short"])
def test_production_refuses_default_or_weak_vendor_secrets(config_file, monkeypatch, key, value):
    for name, secret in PRODUCTION.items():
        monkeypatch.setenv(name, secret)
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=key):
        Settings()


@pytest.mark.parametrize("key", ["MONGO_URI", "JWT_SECRET", "VENDOR_API_KEY", "WEBHOOK_SECRET"])
def test_in_production_a_secret_a_function_was_not_given_has_no_default(config_file, monkeypatch, key):
    """Each function gets only its own secrets; using another fails closed instead of using a dev default."""
    config_file.write_text("{}")
    for name, secret in PRODUCTION.items():
        monkeypatch.setenv(name, secret)
    monkeypatch.delenv(key)
    settings = Settings()
    with pytest.raises(ConfigError, match=f"{key} is not configured"):
        settings.secret(key.lower())
    monkeypatch.setenv("ENV", "development")
    assert Settings().secret(key.lower()), "development keeps its defaults"


@pytest.mark.parametrize("sam_local, refused", [("", True), ("true", False)])
def test_development_does_not_run_in_lambda(config_file, monkeypatch, sam_local, refused):
    """Review finding: a stack deployed as development handed admin tokens to anyone. Lambda's runtime names its API
    in AWS_LAMBDA_RUNTIME_API; sam local (Docker) says so in AWS_SAM_LOCAL; the local runner sets neither."""
    monkeypatch.setenv("ENV", "development")
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    monkeypatch.setenv("AWS_SAM_LOCAL", sam_local)
    if refused:
        with pytest.raises(ConfigError, match="development runs only locally"):
            Settings()
    else:
        assert Settings().is_development


def test_secrets_named_in_the_environment_are_fetched_from_aws(config_file, monkeypatch):
    from crm import config

    fetched = {"/mini-crm/mongo-uri": "mongodb+srv://fetched.example.net/", "mini-crm/jwt": "k" * 40}
    monkeypatch.setattr(config, "_fetch_secret", fetched.__getitem__)
    monkeypatch.setenv("ENV", "production")
    monkeypatch.setenv("MONGO_URI_SECRET_NAME", "/mini-crm/mongo-uri")
    monkeypatch.setenv("JWT_SECRET_NAME", "mini-crm/jwt")
    settings = Settings()
    assert settings.secret("mongo_uri") == fetched["/mini-crm/mongo-uri"] and settings.secret("jwt_secret") == "k" * 40
    with pytest.raises(ConfigError):
        settings.secret("webhook_secret")


def test_empty_environment_variables_do_not_mask_the_file(config_file, monkeypatch):
    """The template sets every variable, blank when its parameter is; blank must mean unset."""
    config_file.write_text(json.dumps({"GOOGLE_CLIENT_ID": "from-file"}))
    monkeypatch.setenv("GOOGLE_CLIENT_ID", "")
    assert Settings().google_client_id == "from-file"
