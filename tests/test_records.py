"""The records' dictionaries are what ``dataclasses.asdict`` gives, field order included, and independent copies."""

from dataclasses import asdict

from sparta.records import Instruction, Judgment, Match, PreferencePair, Response


def test_to_dict_is_asdict_in_field_order():
    instruction = Instruction("i1", "q", domain="math", answer="4", answer_type="number", meta={"k": [1, {"a": 2}]})
    records = [
        instruction,
        Response("i1", "m01", "text", {"quality": 1.5, "nested": {"x": [1]}}),
        Judgment("m02", "m01", "i1", 7.25),
        Judgment("m02", "m01", "i1", None, "unparseable", "???"),
        PreferencePair("p", "c", "r", "m01", "m02", 0.5, "i1", "math"),
    ]
    for record in records:
        assert list(record.to_dict().items()) == list(asdict(record).items())
    assert Match(3, instruction, "a", "b").to_dict()["instruction"] == asdict(instruction)


def test_to_dict_copies_nested_values():
    response = Response("i1", "m01", "text", {"nested": {"x": [1]}})
    copy = response.to_dict()
    copy["meta"]["nested"]["x"].append(2)
    assert response.meta == {"nested": {"x": [1]}}
