"""Where Bedrock's AWS credentials come from, without botocore.

The chain, first match wins (the AWS SDKs' order, less what a sidecar never needs):

1. Component metadata ``accessKey`` + ``secretKey`` (+ ``sessionToken``), as daprd.
2. ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY`` (+ ``AWS_SESSION_TOKEN``).
3. IRSA: ``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN`` → STS ``AssumeRoleWithWebIdentity``.
4. EKS Pod Identity / ECS: ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (or ``…_RELATIVE_URI``) with
   ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (or ``…_TOKEN``).
5. The shared credentials file (``AWS_SHARED_CREDENTIALS_FILE``, default ``~/.aws/credentials``),
   profile ``AWS_PROFILE`` or ``default``.

``assumeRoleArn`` then assumes that role with the credentials found (STS ``AssumeRole``).
Not supported, and refused at load with a clear message: IAM Roles Anywhere (``trustAnchorArn``),
and the EC2 instance metadata service (a pod should not borrow its node's role).

Temporary credentials are cached and refreshed five minutes before they expire. STS is reached at
``AWS_ENDPOINT_URL_STS`` when set (as the AWS SDKs honour it), else ``https://sts.{region}.amazonaws.com``.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yarl

from parley_sidecar import errors
from parley_sidecar.components import catalog, http_kit, sigv4

__all__ = ["CredentialProvider", "provider_for"]

REFRESH_MARGIN = 300.0
"""Seconds before expiry at which temporary credentials are fetched anew."""
_STS_VERSION = "2011-06-15"

Fetch = Callable[[aiohttp.ClientSession], Awaitable[sigv4.Credentials]]


class CredentialProvider:
    """Credentials for signing, fetched once and refreshed before they expire."""

    def __init__(self, describe: str, fetch: Fetch | None = None, static: sigv4.Credentials | None = None) -> None:
        self.describe = describe
        """Where the credentials come from, for log lines and errors (never a value)."""
        self._fetch = fetch
        self._current = static
        self._lock = asyncio.Lock()

    async def get(self, session: aiohttp.ClientSession) -> sigv4.Credentials:
        current = self._current
        if current is not None and (current.expires_at is None or current.expires_at - REFRESH_MARGIN > time.time()):
            return current
        assert self._fetch is not None
        async with self._lock:
            current = self._current
            if current is not None and (
                current.expires_at is None or current.expires_at - REFRESH_MARGIN > time.time()
            ):
                return current
            self._current = await self._fetch(session)
            return self._current


def _expiry(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _read(path: str) -> str:
    """A token file: projected service-account tokens are rotated, so read on every refresh."""
    return Path(path).read_text().strip()


def _sts_url(region: str, env: Mapping[str, str]) -> str:
    return (env.get("AWS_ENDPOINT_URL_STS") or f"https://sts.{region}.amazonaws.com").rstrip("/") + "/"


def _credentials_from_xml(raw: bytes) -> sigv4.Credentials:
    # Imported on the first STS answer, not with the module: ElementTree and expat are ~0.5 MB of
    # RSS that a Bedrock component with static keys or IMDS/container credentials never needs.
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        raise errors.ProviderError("AWS STS returned a malformed response", status=200) from None
    found = {el.tag.rsplit("}", 1)[-1]: (el.text or "") for el in root.iter()}
    try:
        return sigv4.Credentials(found["AccessKeyId"], found["SecretAccessKey"], found.get("SessionToken") or None,
                                 _expiry(found["Expiration"]) if found.get("Expiration") else None)
    except KeyError:
        raise errors.ProviderError("AWS STS returned no credentials", status=200) from None


async def _sts_call(session: aiohttp.ClientSession, url: str, form: dict[str, str], headers: dict[str, str]) -> bytes:
    try:
        async with session.post(url, data=urlencode(form).encode(), headers=headers,
                                timeout=aiohttp.ClientTimeout(total=10)) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise http_kit.error_for_status("AWS STS", resp.status, raw, resp.headers, auth_detail=True,
                                                credential="AWS credentials")
            return raw
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise errors.ProviderUnavailable(f"cannot reach AWS STS: {type(exc).__name__}") from None


def _web_identity(role_arn: str, token_file: str, session_name: str, region: str, env: Mapping[str, str]) -> Fetch:
    async def fetch(session: aiohttp.ClientSession) -> sigv4.Credentials:
        try:
            token = await asyncio.to_thread(_read, token_file)
        except OSError as exc:
            raise errors.ProviderError(f"cannot read the web identity token file: {exc.strerror}") from None
        form = {"Action": "AssumeRoleWithWebIdentity", "Version": _STS_VERSION, "RoleArn": role_arn,
                "RoleSessionName": session_name, "WebIdentityToken": token}
        raw = await _sts_call(session, _sts_url(region, env), form,
                              {"Content-Type": "application/x-www-form-urlencoded"})
        return _credentials_from_xml(raw)

    return fetch


def _container(env: Mapping[str, str]) -> Fetch:
    uri = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") or (
        "http://169.254.170.2" + env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
    )

    async def fetch(session: aiohttp.ClientSession) -> sigv4.Credentials:
        headers: dict[str, str] = {}
        token_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        if token_file:
            headers["Authorization"] = await asyncio.to_thread(_read, token_file)
        elif env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"):
            headers["Authorization"] = env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
        try:
            async with session.get(uri, headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise errors.ProviderError(f"the container credentials endpoint answered {resp.status}",
                                               status=resp.status, retryable=resp.status >= 500)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise errors.ProviderUnavailable(f"cannot reach the container credentials endpoint: "
                                             f"{type(exc).__name__}") from None
        try:
            data: Any = json.loads(raw)
            return sigv4.Credentials(data["AccessKeyId"], data["SecretAccessKey"], data.get("Token"),
                                     _expiry(data["Expiration"]) if data.get("Expiration") else None)
        except (ValueError, KeyError, TypeError):
            raise errors.ProviderError("the container credentials endpoint returned no credentials") from None

    return fetch


def _assume_role(inner: CredentialProvider, role_arn: str, region: str, env: Mapping[str, str]) -> Fetch:
    async def fetch(session: aiohttp.ClientSession) -> sigv4.Credentials:
        base_credentials = await inner.get(session)
        form = {"Action": "AssumeRole", "Version": _STS_VERSION, "RoleArn": role_arn,
                "RoleSessionName": f"parley-{int(time.time())}"}
        body = urlencode(form).encode()
        url = yarl.URL(_sts_url(region, env))
        signed = sigv4.sign(
            method="POST", host=url.host_port_subcomponent or "", path=url.raw_path or "/",
            headers={"content-type": "application/x-www-form-urlencoded"},
            payload_hash=hashlib.sha256(body).hexdigest(), credentials=base_credentials,
            region=region, service="sts",
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded", **signed.headers}
        raw = await _sts_call(session, str(url), form, headers)
        return _credentials_from_xml(raw)

    return fetch


def _shared_file(env: Mapping[str, str]) -> sigv4.Credentials | None:
    path = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or Path(env.get("HOME", "~")) / ".aws" / "credentials")
    profile = env.get("AWS_PROFILE") or "default"
    import configparser  # here: the last source tried, and the only one that reads an INI file

    parser = configparser.ConfigParser()
    try:
        parser.read(path.expanduser())
    except configparser.Error:
        return None
    if not parser.has_section(profile):
        return None
    section = parser[profile]
    if not section.get("aws_access_key_id") or not section.get("aws_secret_access_key"):
        return None
    return sigv4.Credentials(section["aws_access_key_id"], section["aws_secret_access_key"],
                             section.get("aws_session_token") or None)


def provider_for(metadata: Mapping[str, Any], region: str, env: Mapping[str, str] | None = None) -> CredentialProvider:
    """Pick the credential source for a Bedrock component, or raise MetadataError."""
    environ = os.environ if env is None else env
    if metadata.get("trustAnchorArn") or metadata.get("trustProfileArn"):
        raise catalog.MetadataError("trustAnchorArn", "IAM Roles Anywhere is not supported by parley; "
                                    "use IRSA, EKS Pod Identity or access keys")
    access, secret = metadata.get("accessKey"), metadata.get("secretKey")
    provider: CredentialProvider | None = None
    if access or secret:
        if not (access and secret):
            raise catalog.MetadataError("secretKey" if access else "accessKey",
                                        "accessKey and secretKey must be set together")
        provider = CredentialProvider("component metadata",
                                      static=sigv4.Credentials(access, secret, metadata.get("sessionToken") or None))
    elif environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
        provider = CredentialProvider("environment", static=sigv4.Credentials(
            environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"], environ.get("AWS_SESSION_TOKEN") or None))
    elif environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") and environ.get("AWS_ROLE_ARN"):
        provider = CredentialProvider("web identity (IRSA)", fetch=_web_identity(
            environ["AWS_ROLE_ARN"], environ["AWS_WEB_IDENTITY_TOKEN_FILE"],
            environ.get("AWS_ROLE_SESSION_NAME") or f"parley-{int(time.time())}", region, environ))
    elif environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") or environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        provider = CredentialProvider("container credentials", fetch=_container(environ))
    else:
        shared = _shared_file(environ)
        if shared is not None:
            provider = CredentialProvider("shared credentials file", static=shared)
    if provider is None:
        raise catalog.MetadataError(
            "accessKey", "no AWS credentials found: set accessKey and secretKey, or run with IRSA, "
            "EKS Pod Identity or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    role = metadata.get("assumeRoleArn")
    if role:
        return CredentialProvider(f"role {role} assumed with {provider.describe}",
                                  fetch=_assume_role(provider, role, region, environ))
    return provider
