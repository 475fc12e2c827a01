"""JSON Schema for the envelope and every event payload, and an AsyncAPI 3 document,
all generated from the pydantic models so the published contract cannot drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.envelope import Envelope
from shared.events import BASE_TOPICS, EVENT_MODELS


def event_schemas() -> dict[str, dict[str, Any]]:
    schemas = {"envelope": Envelope.model_json_schema()}
    for event_type, model in EVENT_MODELS.items():
        schema = model.model_json_schema()
        schema["title"] = event_type
        schema["x-topic"] = model.topic
        schema["x-schema-version"] = model.schema_version
        schemas[event_type] = schema
    return schemas


def asyncapi_document() -> dict[str, Any]:
    messages = {
        event_type.replace(".", "_"): {
            "name": event_type,
            "contentType": "application/json",
            "payload": {"$ref": f"./{event_type}.json"},
            "headers": {"$ref": "./envelope.json"},
        }
        for event_type in EVENT_MODELS
    }
    channels = {
        topic.replace(".", "_"): {
            "address": topic,
            "messages": {
                name: {"$ref": f"#/components/messages/{name}"}
                for name, message in messages.items()
                if EVENT_MODELS[str(message["name"])].topic == topic
            },
        }
        for topic in BASE_TOPICS
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "leadflow events",
            "version": "1",
            "description": "Every message is an envelope (envelope.json) whose `data` is the type's payload.",
        },
        "channels": channels,
        "components": {"messages": messages},
    }


def export_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in {**event_schemas(), "asyncapi": asyncapi_document()}.items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
