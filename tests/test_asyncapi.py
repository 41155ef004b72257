"""docs/asyncapi.json is generated from the message models and must not drift from them."""

from __future__ import annotations

from pathlib import Path

import orjson

from synthia_rt.realtime.asyncapi import build
from synthia_rt.realtime.protocol import COMMANDS


def test_committed_document_matches_the_models() -> None:
    committed = orjson.loads((Path(__file__).parents[1] / "docs" / "asyncapi.json").read_bytes())
    assert committed == orjson.loads(orjson.dumps(build())), "run: synthia-rt asyncapi > docs/asyncapi.json"


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
    assert result["oneOf"] == [{"$ref": "#/components/schemas/FacialResult"}, {"$ref": "#/components/schemas/ChromaticResult"}]
    facial, chromatic = schemas["FacialResult"]["properties"], schemas["ChromaticResult"]["properties"]
    assert {"confidence", "features"} <= set(facial) and {"confidence", "recommendations"} <= set(chromatic)
    assert schemas["Confidence"]["properties"]["value"] == {
        "description": "How sure the analysis is of this field, 0 to 1", "maximum": 1, "minimum": 0,
        "title": "Value", "type": "number"}
    assert set(FACIAL_RESULT) <= set(facial) and set(CHROMATIC_RESULT) <= set(chromatic)
