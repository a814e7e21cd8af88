"""Poison events reach a running notify: each is dead-lettered with its reason, the consumer carries on, and an
operator inspects and replays them with `poi deadletters`."""

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from poi_notify.events import STATUS_CONSUMER
from poi_shared.envelope import OutgoingMessage
from tests.faults.conftest import POLL_BOUND_S, FaultStack, eventually, observed, publish
from tests.support.events import status_event

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def poisoned(namespace: str) -> dict[str, OutgoingMessage]:
    """Three events no consumer can handle, by the reason it should give."""
    malformed = status_event(namespace)
    malformed = OutgoingMessage(malformed.event_id, malformed.subject, malformed.headers, b'{"point_id": "not json')
    unknown = status_event(namespace)
    unknown.headers["ce-type"] = "ua.poi.status.exploded.v1"
    newer = status_event(namespace)
    newer.headers["ce-type"] = "ua.poi.status.changed.v2"  # a version this consumer does not know yet
    return {"invalid ua.poi.status.changed.v1 event": malformed, "unknown ce-type": unknown, "changed.v2": newer}


def poi(faults: FaultStack, *args: str) -> str:
    """Run the `poi` command as an operator would, against the fault stack's broker."""
    command = [str(Path(sys.executable).parent / "poi"), "deadletters", *args]
    command += ["--nats-url", faults.nats.url, "--namespace", faults.namespace]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "COLUMNS": "400"}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def listed(faults: FaultStack) -> tuple[list[int], str]:
    """The sequences of notify's status consumer's dead letters, and the listing."""
    text = poi(faults, "list", "--consumer", STATUS_CONSUMER)
    seqs = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if cells and cells[0].isdigit():
            seqs.append(int(cells[0]))
    return seqs, text


def test_poison_is_dead_lettered_with_its_reason_and_replayed(faults: FaultStack) -> None:
    poison = poisoned(faults.namespace)
    healthy = status_event(faults.namespace)
    asyncio.run(publish(faults, [*poison.values(), healthy]))

    point = uuid.UUID(healthy.headers["ce-subject"])
    # The consumer carries on past the poison in front of it.
    eventually(lambda: asyncio.run(observed(faults, [point])), "notify handles the healthy event after the poison")

    def all_dead() -> tuple[list[int], str] | None:
        seqs, text = listed(faults)
        return (seqs, text) if len(seqs) >= len(poison) else None

    dead, text = eventually(all_dead, "three dead letters")
    assert len(dead) == len(poison)
    for reason in poison:
        assert reason in text, f"no dead letter says {reason!r}:\n{text}"

    first = min(dead)
    shown = poi(faults, "show", str(first))
    assert "Poi-Dead-Reason" in shown and "ce-id" in shown

    # A replay goes back to notify, which judges it again: still poison, so it returns as a new dead letter.
    assert f"Replayed {first}" in poi(faults, "replay", str(first))

    def back() -> list[int] | None:
        seqs, _ = listed(faults)
        return seqs if first not in seqs and len(seqs) == len(poison) else None

    again = eventually(back, "the replayed dead letter comes back", bound_s=POLL_BOUND_S)
    assert max(again) > max(dead)
