"""Browser tier: `liveshop up --demo` started as users start it, driven by Playwright in
Debian's headless Chromium with a fake camera. Screenshots go to ``test-artifacts/``
(``LIVESHOP_ARTIFACTS`` to change it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright

from liveshop.config import ENV_DATABASE_URL, Settings
from liveshop.storage.embedded import free_port
from liveshop.tokens import Role, issue_token
from tests import services

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("LIVESHOP_ARTIFACTS") or ROOT / "test-artifacts")
#: The fake camera and microphone, no permission prompts, video that plays unmuted too, and
#: real host ICE candidates (not mDNS names) on loopback.
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--no-sandbox",
    "--disable-dev-shm-usage",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Site:
    """A running `liveshop up --demo`."""

    url: str
    settings: Settings

    def token(self, user: str, rooms: dict[str, list[str]], name: str | None = None) -> str:
        return issue_token(self.settings.secret, user_id=user, name=name or user.title(),
                           rooms=rooms, now=time.time(), ttl=3600)  # fmt: skip

    @property
    def service_token(self) -> str:
        return self.token("ops", {"*": [Role.SERVICE]}, "Ops")

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.service_token}"},
            timeout=30,
        )


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("liveshop-up")
    with services.optional_database(data_dir) as database_url:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if database_url:
            env[ENV_DATABASE_URL] = database_url
        http_port = free_port()
        command = [
            str(Path(sys.executable).parent / "liveshop"), "up", "--demo",
            "--data-dir", str(data_dir),
            "--http-port", str(http_port), "--ws-port", str(free_port()),
            "--dashboard-port", str(free_port()), "--rtmp-port", str(free_port()),
        ]  # fmt: skip
        log = (data_dir / "up.log").open("w")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{http_port}"
        try:
            _wait_ready(process, url, data_dir / "up.log")
            yield Site(url, Settings(data_dir=data_dir).with_keys())
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"liveshop up exited:\n{log.read_text()[-4000:]}")
        if "liveshop is ready" in log.read_text():
            return
        time.sleep(1)
    raise AssertionError(f"liveshop up did not get ready:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as p:
        yield p


@pytest.fixture(scope="session")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    executable = _chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (./scripts/test installs it with apt-get)")
    browser = await playwright.chromium.launch(
        executable_path=executable, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    await browser.close()


async def new_context(browser: Browser, site: Site, viewport: dict[str, int] = PHONE,
                      **options: object) -> BrowserContext:  # fmt: skip
    context = await browser.new_context(
        base_url=site.url, viewport=viewport,  # type: ignore[arg-type]
        permissions=["camera", "microphone"], **options,  # type: ignore[arg-type]
    )  # fmt: skip
    context.set_default_timeout(30_000)
    return context


def artifact(name: str) -> Path:
    path = ARTIFACTS / "screenshots" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
