"""The committed AsyncAPI document matches the event contract in code."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from poi_shared.asyncapi import build_document, message_id, render_yaml
from poi_shared.contracts import EVENT_TYPES, STREAMS
from poi_shared.envelope import REQUIRED_HEADERS

REPO_ROOT = Path(__file__).resolve().parents[3]
DOC_PATH = REPO_ROOT / "docs" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """The committed document, parsed."""
    return yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))


def refs(node: object) -> Iterator[str]:
    """Every $ref value anywhere in a document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc: dict[str, Any], ref: str) -> object:
    """Follow a local JSON pointer ref; raises KeyError when it does not resolve."""
    assert ref.startswith("#/"), f"non-local $ref {ref}"
    node: object = doc
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node[part]
        elif isinstance(node, list):
            node = node[int(part)]
        else:
            raise KeyError(ref)
    return node


def test_committed_document_is_up_to_date() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render_yaml(), (
        "docs/asyncapi.yaml is out of date with the contract: run `poi asyncapi` to regenerate"
    )


def test_render_yaml_round_trips_to_build_document() -> None:
    assert yaml.safe_load(render_yaml()) == build_document()


def test_asyncapi_version(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"


def test_every_event_type_is_a_message_with_its_model_schema(doc: dict[str, Any]) -> None:
    messages = doc["components"]["messages"]
    for event_type in EVENT_TYPES.values():
        message = messages[message_id(event_type)]
        assert message["name"] == event_type.type
        assert message["summary"] == event_type.summary
        assert message["contentType"] == "application/json"
        assert message["headers"]["properties"]["ce-type"]["const"] == event_type.type
        model: type[BaseModel] = event_type.data
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        defs = schema.pop("$defs", {})
        assert message["payload"] == schema
        for name, definition in defs.items():
            assert doc["components"]["schemas"][name] == definition


def test_every_event_type_is_on_its_streams_channel(doc: dict[str, Any]) -> None:
    for event_type in EVENT_TYPES.values():
        channel = doc["channels"][event_type.stream.token]
        assert message_id(event_type) in channel["messages"]


def test_every_stream_has_a_channel(doc: dict[str, Any]) -> None:
    addresses = {channel["address"] for channel in doc["channels"].values()}
    for stream in STREAMS:
        channel = doc["channels"][stream.token]
        assert channel["address"].startswith(f"poi.{stream.token}.{{")
        assert channel["address"].endswith("}")
        param = channel["address"].rsplit(".", 1)[1][1:-1]
        assert channel["parameters"][param]["description"]
    assert len(addresses) == len(STREAMS)


def test_event_messages_require_the_cloudevents_headers(doc: dict[str, Any]) -> None:
    # The dead-letter message is exempt: a poison message may be missing exactly these headers.
    messages = doc["components"]["messages"]
    for event_type in EVENT_TYPES.values():
        headers = messages[message_id(event_type)]["headers"]
        assert headers["type"] == "object"
        for name in ("ce-id", "ce-source", "ce-type", "ce-specversion", "ce-time"):
            assert name in headers["required"], f"{event_type.type} does not require {name}"
        assert set(REQUIRED_HEADERS) <= set(headers["required"])


def test_dead_letter_message_describes_its_headers(doc: dict[str, Any]) -> None:
    messages = doc["channels"]["deadletter"]["messages"]
    (message,) = (resolve(doc, m["$ref"]) for m in messages.values())
    assert isinstance(message, dict)
    required = message["headers"]["required"]
    assert {"Poi-Dead-Consumer", "Poi-Dead-Reason", "Poi-Dead-Subject"} <= set(required)


def test_producers_send_and_consumers_receive(doc: dict[str, Any]) -> None:
    pairs = {
        (op["action"], op["channel"]["$ref"].rsplit("/", 1)[1], op_id.split("_", 1)[0])
        for op_id, op in doc["operations"].items()
    }
    assert ("send", "points", "registry") in pairs
    assert ("send", "status", "status") in pairs
    assert ("receive", "points", "search") in pairs
    assert ("receive", "status", "search") in pairs
    assert ("receive", "points", "status") in pairs
    assert ("receive", "status", "notify") in pairs


def test_operation_messages_belong_to_their_channel(doc: dict[str, Any]) -> None:
    for op_id, op in doc["operations"].items():
        channel_ref = op["channel"]["$ref"]
        for message in op["messages"]:
            assert message["$ref"].startswith(f"{channel_ref}/messages/"), op_id


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    found = list(refs(doc))
    assert found
    for ref in found:
        try:
            resolve(doc, ref)
        except (KeyError, IndexError, ValueError) as exc:
            raise AssertionError(f"unresolved $ref {ref}") from exc
