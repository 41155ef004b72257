"""docs/asyncapi.json is generated from the message models and must not drift from them; the
replies and direct events a real socket sends validate against the models it documents."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson

from synthia_rt.realtime import protocol as p
from synthia_rt.realtime.asyncapi import DIRECT_EVENTS, AnalysisErrorDirect, build
from synthia_rt.realtime.protocol import COMMANDS, REPLIES, encode_chunk
from tests.analysis_support import astronaut_jpeg, sha
from tests.conftest import serving
from tests.wsclient import Client, register, ws_session


def test_committed_document_matches_the_models() -> None:
    committed = orjson.loads((Path(__file__).parents[1] / "docs" / "asyncapi.json").read_bytes())
    assert committed == orjson.loads(orjson.dumps(build())), (
        "run: synthia-rt asyncapi > docs/asyncapi.json"
    )


def test_every_command_is_a_message() -> None:
    doc = build()
    for op in COMMANDS:
        message = doc["components"]["messages"][f"cmd_{op.replace('.', '_')}"]
        assert message["payload"]["properties"]["op"] == {"const": op}
        assert "id" in message["payload"]["required"]


def test_analysis_result_is_typed_per_kind() -> None:
    from tests.analysis_support import CHROMATIC_RESULT, FACIAL_RESULT

    doc = build()
    schemas = doc["components"]["schemas"]
    result = doc["components"]["messages"]["AnalysisResult"]["payload"]["properties"]["result"]
    assert result["oneOf"] == [
        {"$ref": "#/components/schemas/FacialResult"},
        {"$ref": "#/components/schemas/ChromaticResult"},
    ]
    facial, chromatic = (
        schemas["FacialResult"]["properties"],
        schemas["ChromaticResult"]["properties"],
    )
    assert {"confidence", "features"} <= set(facial) and {"confidence", "recommendations"} <= set(
        chromatic
    )
    assert schemas["Confidence"]["properties"]["value"] == {
        "description": "How sure the analysis is of this field, 0 to 1",
        "maximum": 1,
        "minimum": 0,
        "title": "Value",
        "type": "number",
    }
    assert set(FACIAL_RESULT) <= set(facial) and set(CHROMATIC_RESULT) <= set(chromatic)


def test_every_command_documents_its_reply() -> None:
    """Each op is a ``send`` operation whose AsyncAPI 3 ``reply`` is its success reply (the
    dispatcher's model) or the error reply."""
    doc = build()
    messages = doc["components"]["messages"]
    for op, model in REPLIES.items():
        operation = doc["operations"][f"send_{op.replace('.', '_')}"]
        assert operation["messages"] == [
            {"$ref": f"#/channels/ws/messages/cmd_{op.replace('.', '_')}"}
        ]
        refs = [m["$ref"].rsplit("/", 1)[1] for m in operation["reply"]["messages"]]
        assert refs == [f"reply_{op.replace('.', '_')}", "ErrorReply"]
        payload = messages[refs[0]]["payload"]
        assert payload["title"] == model.__name__ and payload["properties"]["ok"] == {"const": True}
        assert {"id", "ok"} <= set(payload["required"])
        for ref in refs:
            assert ref in doc["channels"]["ws"]["messages"]


def test_direct_events_carry_no_channel_sequence() -> None:
    """upload.progress, a refused chunk's analysis.error, a re-sent final event and channel.reset
    are direct: no ``epoch``, and no required ``offset``/``channel`` (upload.progress's own
    ``offset`` is a byte offset)."""
    messages = build()["components"]["messages"]
    direct = {name: m for name, m in messages.items() if m.get("x-delivery") == "direct"}
    assert set(direct) == {m.__name__ for m in DIRECT_EVENTS}
    for name in ("UploadProgress", "AnalysisErrorDirect", "AnalysisResultDirect", "ChannelReset"):
        payload = direct[name]["payload"]
        assert "epoch" not in payload["properties"], name
    assert "channel" not in direct["UploadProgress"]["payload"]["properties"]
    assert (
        "byte offset" in direct["UploadProgress"]["payload"]["properties"]["offset"]["description"]
    )
    assert "channel" not in direct["AnalysisErrorDirect"]["payload"]["required"]
    assert "offset" not in direct["AnalysisErrorDirect"]["payload"]["properties"]
    for name, message in messages.items():
        if message.get("x-delivery") == "channel":
            assert {"channel", "offset", "epoch"} <= set(message["payload"]["required"]), name


def _reply_fields(op: str, frame: dict[str, Any]) -> dict[str, Any]:
    """The reply's fields, validated by the op's reply model (strict, no unknown field)."""
    assert frame.get("ok") is True and type(frame.get("id")) is int, (op, frame)
    fields = {k: v for k, v in frame.items() if k not in ("id", "ok")}
    REPLIES[op].model_validate(fields)
    return fields


async def test_every_reply_sent_validates_against_its_model(settings_for: Any) -> None:
    """A real socket session sends every op; each reply (and each direct event an upload causes)
    validates against the model docs/asyncapi.json documents for it."""
    seen: set[str] = set()

    async def command(client: Client, op: str, **fields: Any) -> dict[str, Any]:
        seen.add(op)
        return _reply_fields(op, await client.command(op, timeout=10, **fields))

    async with serving(settings_for("memory")) as live:
        user = await register(f"http://{live}")
        async with ws_session(f"ws://{live}/ws", user["access_token"]) as client:
            await command(client, "ping")
            await command(client, "auth.refresh", token=user["access_token"])
            channel = f"user:{user['user']['id']}"
            await command(client, "subscribe", channel=channel, since={"offset": 0, "epoch": ""})
            await command(client, "unsubscribe", channel=channel)

            image = astronaut_jpeg()
            started = await command(
                client,
                "analysis.start",
                kind="facial",
                content_type="image/jpeg",
                size=len(image),
                sha256=sha(image),
            )
            aid = uuid.UUID(started["analysis_id"])
            await client.send_raw(
                encode_chunk(aid, 1, b"x")
            )  # wrong offset: a direct analysis.error
            refused = await client.event("analysis.error", code="bad_chunk")
            AnalysisErrorDirect.model_validate(refused)
            assert not {"channel", "offset", "epoch"} & set(refused), refused
            step = started["upload"]["max_chunk_bytes"]
            await client.send_raw(encode_chunk(aid, 0, image[:step]))
            progress = await client.event("upload.progress")
            assert p.UploadProgress.model_validate(progress).offset == min(step, len(image))
            assert not {"channel", "epoch"} & set(progress), progress
            status = await command(client, "upload.status", analysis_id=str(aid))
            assert status == {"offset": min(step, len(image)), "size": len(image)}
            await command(client, "analysis.cancel", analysis_id=str(aid))

            quiz = await command(client, "quiz.start")
            for question in quiz["questions"]:
                await command(
                    client,
                    "quiz.answer",
                    quiz_id=quiz["quiz_id"],
                    question=question["id"],
                    answer=question["options"][0]["id"],
                )
            await command(client, "quiz.submit", quiz_id=quiz["quiz_id"])
    assert seen == set(COMMANDS)
