"""Each Locust scenario of loadtest/locustfile.py runs end to end (`locust --headless`, a few
users for 8-20 s) against the session's stack and writes CSV in which every round trip it
needed was made and succeeded.

Assertions are about behaviour (entries present, no failures, recoveries all true, the flash
SKU's books balance), never about speed: the machine is shared and slow.
"""

from __future__ import annotations

import csv
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
LOCUST = Path(sys.executable).parent / "locust"
FLASH_STOCK = 8


@dataclass(frozen=True)
class Scenario:
    users: int
    #: Locust's -t; it includes the locustfile's set-up through the HTTP API (a new SKU starts
    #: its actor: seconds on a busy machine), hence the flash sale's longer run.
    run_time: str
    #: Options that make a short run show every behaviour (drops, sell-out, storms).
    options: tuple[str, ...]
    #: "Type Name" rows of the stats CSV that must have requests.
    entries: tuple[str, ...]
    #: Rows that must have no failures; None: every row.
    must_not_fail: tuple[str, ...] | None = None


VIEWER_ENTRIES = ("WS open", "WS connect", "WS subscribe", "WS chat", "WS react", "PUSH chat",
                  "WS reconnect", "WS recover")  # fmt: skip
SCENARIOS = {
    "viewer": Scenario(
        users=4,
        run_time="8s",
        options=("--viewer-drop-interval", "2", "--liveshop-pace", "0.5"),
        entries=VIEWER_ENTRIES,
    ),
    "flash": Scenario(
        users=4,
        run_time="20s",
        options=("--flash-stock", str(FLASH_STOCK), "--liveshop-pace", "0.3"),
        entries=("WS subscribe", "WS buy", "WS buy (sold out)"),
    ),
    "http": Scenario(
        users=2,
        run_time="8s",
        options=("--liveshop-pace", "0.2"),
        entries=("GET /rooms/[room]", "GET /skus/[sku]", "GET /healthz", "GET /grid"),
    ),
    "storm": Scenario(
        users=6,
        run_time="8s",
        options=("--storm-interval", "3", "--storm-jitter", "0.3"),
        entries=("WS subscribe", "WS reconnect", "WS recover"),
        must_not_fail=("WS reconnect", "WS recover", "WS recover (gap)", "PUSH duplicate"),
    ),
}


@dataclass(frozen=True)
class Target:
    room: str
    sku: str


@pytest.fixture(scope="module")
def target(running: Running) -> Target:
    """A room of this module's own; the flash SKU is left for the locustfile to create."""
    room = f"locust-{secrets.token_hex(4)}"
    response = httpx.post(
        f"{running.settings.http_url}/rooms",
        json={"id": room, "title": "Locust"},
        headers={"Authorization": f"Bearer {running.service_token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return Target(room, f"flash-{secrets.token_hex(4)}")


def run_locust(running: Running, target: Target, tag: str, csv_prefix: Path) -> str:
    """Run one scenario; returns Locust's output (for assertion messages)."""
    scenario = SCENARIOS[tag]
    settings = running.settings
    # The secret comes from the data dir, as for `liveshop token`: no LIVESHOP_* from outside.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVESHOP_", "LOCUST_"))}
    command = [
        str(LOCUST), "-f", str(LOCUSTFILE), "--headless", "--only-summary", "--tags", tag,
        "-u", str(scenario.users), "-r", str(scenario.users), "-t", scenario.run_time,
        "--csv", str(csv_prefix), "--host", settings.http_url,
        "--liveshop-ws-url", settings.ws_url, "--liveshop-data-dir", str(settings.data_dir),
        "--liveshop-room", target.room, "--flash-sku", target.sku, *scenario.options,
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    return f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"


def read_stats(csv_prefix: Path, output: str) -> dict[str, dict[str, str]]:
    """The stats CSV's rows by "Type Name" (e.g. "WS buy", "GET /healthz")."""
    path = Path(f"{csv_prefix}_stats.csv")
    assert path.exists(), output
    with path.open() as f:
        return {
            f"{r['Type']} {r['Name']}": r for r in csv.DictReader(f) if r["Name"] != "Aggregated"
        }


@pytest.mark.parametrize("tag", list(SCENARIOS))
def test_locust_scenario_runs_end_to_end_and_writes_csv(
    running: Running, target: Target, tmp_path: Path, tag: str
) -> None:
    scenario = SCENARIOS[tag]
    prefix = tmp_path / tag
    output = run_locust(running, target, tag, prefix)
    stats = read_stats(prefix, output)

    for entry in scenario.entries:
        assert entry in stats and int(stats[entry]["Request Count"]) > 0, (entry, output)
    checked = stats if scenario.must_not_fail is None else scenario.must_not_fail
    failed = {e: stats[e]["Failure Count"] for e in checked if e in stats}
    assert all(count == "0" for count in failed.values()), (failed, output)
    # An exception in a task is a bug in the locustfile, whatever the scenario.
    with Path(f"{prefix}_exceptions.csv").open() as f:
        assert list(csv.DictReader(f)) == [], output
    if scenario.must_not_fail is None:
        assert output.startswith("exit 0\n"), output

    if tag == "flash":
        # Every successful buy took one unit, and no more were sold than there were.
        audit = httpx.get(
            f"{running.settings.http_url}/skus/{target.sku}/audit",
            headers={"Authorization": f"Bearer {running.service_token}"},
            timeout=30,
        ).json()
        assert audit["problems"] == [], audit
        assert audit["sold"] == int(stats["WS buy"]["Request Count"]) == FLASH_STOCK, (
            audit,
            output,
        )
