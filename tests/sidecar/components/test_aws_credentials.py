"""Bedrock's credential chain end to end: a fake STS and a fake container-credentials endpoint on
loopback hand out temporary keys, and the Bedrock fake accepts only requests signed with them."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from parley_sidecar.components import aws_auth, catalog, sigv4
from parley_sidecar.components.store import LoadError
from tests.fakes import BedrockFake
from tests.sidecar.components.conftest import Build, text_request

TEMP_ACCESS, TEMP_SECRET, TEMP_TOKEN = "ASIATEMPFAKE", "temp/secret", "temp-session-token"


def _iso(seconds_from_now: float) -> str:
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds_from_now)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class CredentialServer:
    """STS (``AssumeRoleWithWebIdentity``, ``AssumeRole``) and a container credentials endpoint."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.lifetime = 3600.0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def sts(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.calls.append({"path": request.path, "form": form, "headers": dict(request.headers)})
        action = str(form.get("Action"))
        if action == "AssumeRole" and "AWS4-HMAC-SHA256" not in request.headers.get("Authorization", ""):
            return web.Response(status=403, text="<ErrorResponse><Error><Message>unsigned</Message></Error>"
                                                 "</ErrorResponse>")
        return web.Response(content_type="text/xml", text=(
            f'<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><{action}Result><Credentials>'
            f"<AccessKeyId>{TEMP_ACCESS}</AccessKeyId><SecretAccessKey>{TEMP_SECRET}</SecretAccessKey>"
            f"<SessionToken>{TEMP_TOKEN}</SessionToken><Expiration>{_iso(self.lifetime)}</Expiration>"
            f"</Credentials></{action}Result></{action}Response>"))

    async def container(self, request: web.Request) -> web.Response:
        self.calls.append({"path": request.path, "headers": dict(request.headers)})
        if request.headers.get("Authorization") != "pod-identity-token":
            return web.Response(status=401)
        return web.json_response({"AccessKeyId": TEMP_ACCESS, "SecretAccessKey": TEMP_SECRET, "Token": TEMP_TOKEN,
                                  "Expiration": _iso(self.lifetime)})

    async def start(self) -> CredentialServer:
        app = web.Application()
        app.router.add_post("/", self.sts)
        app.router.add_get("/v1/credentials", self.container)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def creds_server() -> AsyncIterator[CredentialServer]:
    server = await CredentialServer().start()
    yield server
    await server.close()


@pytest.fixture
async def temp_bedrock() -> AsyncIterator[BedrockFake]:
    fake = await BedrockFake(credentials={TEMP_ACCESS: TEMP_SECRET, "AKIDBASE": "base/secret"}).start()
    fake.session_tokens[TEMP_ACCESS] = TEMP_TOKEN
    yield fake
    await fake.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_PROFILE",
                "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL_STS", "AWS_ROLE_SESSION_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


async def test_irsa_web_identity(build: Build, temp_bedrock: BedrockFake, creds_server: CredentialServer,
                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("eyJ.projected.token\n")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/parley")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{creds_server.port}")
    entry = await build("conversation.aws.bedrock", {"endpoint": temp_bedrock.url, "model": "m"})
    await entry.instance.converse(text_request("Hi"), timeout=5)
    await entry.instance.converse(text_request("Hi again"), timeout=5)
    assert len(temp_bedrock.requests) == 2
    (call,) = creds_server.calls  # cached: fetched once for both calls
    assert call["form"]["Action"] == "AssumeRoleWithWebIdentity"
    assert call["form"]["WebIdentityToken"] == "eyJ.projected.token"
    assert call["form"]["RoleArn"] == "arn:aws:iam::123456789012:role/parley"


async def test_credentials_near_expiry_are_refreshed(build: Build, temp_bedrock: BedrockFake,
                                                     creds_server: CredentialServer,
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    creds_server.lifetime = aws_auth.REFRESH_MARGIN - 60
    token_file = tmp_path / "token"
    token_file.write_text("t")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{creds_server.port}")
    entry = await build("conversation.aws.bedrock", {"endpoint": temp_bedrock.url, "model": "m"})
    for _ in range(2):
        await entry.instance.converse(text_request("Hi"), timeout=5)
    assert len(creds_server.calls) == 2


async def test_pod_identity_container_credentials(build: Build, temp_bedrock: BedrockFake,
                                                  creds_server: CredentialServer,
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "eks-token").write_text("pod-identity-token")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{creds_server.port}/v1/credentials")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(tmp_path / "eks-token"))
    entry = await build("conversation.aws.bedrock", {"endpoint": temp_bedrock.url, "model": "m"})
    response = await entry.instance.converse(text_request("Hi"), timeout=5)
    assert response.outputs[0].choices[0].content == "echo: Hi"


async def test_assume_role_signs_with_the_base_credentials(build: Build, temp_bedrock: BedrockFake,
                                                           creds_server: CredentialServer,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{creds_server.port}")
    entry = await build("conversation.aws.bedrock", {
        "endpoint": temp_bedrock.url, "model": "m", "accessKey": "AKIDBASE", "secretKey": "base/secret",
        "assumeRoleArn": "arn:aws:iam::1:role/target"})
    await entry.instance.converse(text_request("Hi"), timeout=5)
    (call,) = creds_server.calls
    assert call["form"]["Action"] == "AssumeRole"
    assert call["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDBASE/")
    assert "/sts/aws4_request" in call["headers"]["Authorization"]
    assert temp_bedrock.last.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={TEMP_ACCESS}/")


async def test_environment_and_shared_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env/secret")
    provider = aws_auth.provider_for({}, "us-east-1")
    assert provider.describe == "environment"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    (tmp_path / "creds").write_text("[default]\naws_access_key_id = AKDEF\naws_secret_access_key = d\n"
                                    "[team]\naws_access_key_id = AKTEAM\naws_secret_access_key = t\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "creds"))
    monkeypatch.setenv("AWS_PROFILE", "team")
    provider = aws_auth.provider_for({}, "us-east-1")
    assert provider.describe == "shared credentials file"
    got = await provider.get(None)  # type: ignore[arg-type]  # static: no I/O
    assert got == sigv4.Credentials("AKTEAM", "t")


@pytest.mark.parametrize(("metadata", "field"), [
    ({}, "accessKey"),
    ({"accessKey": "AK"}, "secretKey"),
    ({"secretKey": "SK"}, "accessKey"),
    ({"accessKey": "AK", "secretKey": "SK", "trustAnchorArn": "arn:aws:rolesanywhere:…"}, "trustAnchorArn"),
])
def test_unusable_credentials_fail_at_load(metadata: dict[str, str], field: str) -> None:
    with pytest.raises(catalog.MetadataError) as info:
        aws_auth.provider_for(metadata, "us-east-1")
    assert info.value.field == field
    assert "SK" not in str(info.value)


async def test_load_error_names_component_and_field(build: Build) -> None:
    with pytest.raises(LoadError, match=r"component 'c' \(conversation.aws.bedrock\).*'accessKey'"):
        await build("conversation.aws.bedrock", {"model": "m"})
