"""Task loaders: the SPARTA authors' files as published, generic files with bad records, Hugging Face datasets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from sparta.records import Instruction
from sparta.tasks import TaskDataError, TaskOptionsError, load_task, task_names


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_well_formed(instructions: list[Instruction]) -> None:
    ids = [i.id for i in instructions]
    assert len(ids) == len(set(ids))
    for instruction in instructions:
        assert instruction.text.strip()
        assert (instruction.answer is None) == (instruction.answer_type is None)


# --- the authors' files -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task, file, options, count, domain, answer_type",
    [
        ("math", "math/easy.jsonl", {}, 1912, "math", "math"),
        ("gsm8k", "gsm8k/questions.json", {}, 7473, "math", None),
        ("com2", "com2/train.json", {}, 7200, "commonsense", "text"),
        ("normad", "normad/country_dataset.json", {}, 2370, "culture", "label"),
        ("normad", "normad/country_dataset.json", {"split": "test"}, 263, "culture", "label"),
        ("normad", "normad/country_dataset.json", {"split": "valid"}, 53, "culture", "label"),
        ("knowledge_crosswords", "knowledge_crosswords/train.json", {}, 1000, "knowledge", "choice"),
        ("truthfulqa", "truthfulqa/data_train.jsonl", {}, 7200, "truthfulness", None),
    ],
)
def test_authors_files_load_completely(task, file, options, count, domain, answer_type, shared_tasks):
    instructions = load_task(task, {"path": str(shared_tasks / file), **options})
    assert len(instructions) == count
    assert instructions.bad_records == ()
    assert_well_formed(instructions)
    assert {i.domain for i in instructions} == {domain}
    assert {i.answer_type for i in instructions} == {answer_type}


def test_authors_files_field_values(shared_tasks):
    math = load_task("math", {"path": str(shared_tasks / "math/easy.jsonl")})
    assert (math[0].id, math[0].answer, math[0].meta["category"]) == ("math-00000", "11", "algebra")
    assert math[0].text.startswith("If $x = 2$ and $y = 5$")
    # a dozen records have a null "answer": the gold comes from the solution's last \boxed{}
    sin60 = next(i for i in math if i.text == "Compute $\\sin 60^\\circ$.")
    assert sin60.answer == "\\frac{\\sqrt{3}}{2}"

    gsm8k = load_task("gsm8k", {"path": str(shared_tasks / "gsm8k/questions.json")})
    assert gsm8k[42].id == "gsm8k-00042"
    assert gsm8k[0].text.startswith("Natalia sold clips") and "step by step" not in gsm8k[0].text

    normad = load_task("normad", {"path": str(shared_tasks / "normad/country_dataset.json")})
    assert normad[0].id == "normad-train-1679" and normad[0].answer == "no"
    assert {i.answer for i in normad} == {"yes", "no", "neutral"}

    crosswords = load_task("knowledge_crosswords", {"path": str(shared_tasks / "knowledge_crosswords/train.json")})
    assert {i.answer for i in crosswords} == {"A", "B", "C", "D"} and crosswords[0].answer == "D"

    com2 = load_task("com2", {"path": str(shared_tasks / "com2/train.json")})
    assert com2[0].answer == "in pain" and com2[0].meta == {"datasplit": "train"}


# --- authors' formats on small files with bad records --------------------------------------------------------


def test_normad_bad_label_names_file_line_key_and_field(tmp_path):
    data = {
        "train": {
            "7": {"instruction": "Is it fine?", "label": "yes"},
            "9": {"instruction": "Is that fine?", "label": "maybe"},
        },
        "test": {},
    }
    path = tmp_path / "normad.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    with pytest.raises(TaskDataError) as info:
        load_task("normad", {"path": str(path)})
    message = str(info.value)
    assert f"{path}:7" in message and "'9'" in message and "'label'" in message and "maybe" in message
    assert info.value.location.line == 7 and info.value.field == "label"

    kept = load_task("normad", {"path": str(path)}, on_bad_record="skip")
    assert [i.id for i in kept] == ["normad-train-7"] and len(kept.bad_records) == 1


def test_normad_unknown_split_is_an_option_error(tmp_path):
    path = tmp_path / "normad.json"
    path.write_text(json.dumps({"train": {}}), encoding="utf-8")
    with pytest.raises(TaskOptionsError, match="'split'"):
        load_task("normad", {"path": str(path), "split": "dev"})


def test_crosswords_missing_split_key_lists_the_keys(tmp_path):
    path = tmp_path / "kc.json"
    path.write_text(json.dumps({"train": [{"prompt": "p", "completion": "A"}]}), encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"found \['train'\]"):
        load_task("knowledge_crosswords", {"path": str(path), "split": "test"})


def test_crosswords_bad_letter_and_math_null_answer(tmp_path):
    path = tmp_path / "kc.json"
    path.write_text(json.dumps({"train": [{"prompt": "p", "completion": "E"}]}, indent=1), encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"kc.json:3: field 'completion': expected a letter A-D"):
        load_task("knowledge_crosswords", {"path": str(path)})

    math = write_jsonl(
        tmp_path / "easy.jsonl",
        [
            json.dumps({"problem": "1+1?", "answer": None, "solution": "So \\boxed{2}."}),
            json.dumps({"problem": "2+2?", "answer": None, "solution": "no box here"}),
        ],
    )
    with pytest.raises(TaskDataError, match=r"easy.jsonl:2: field 'answer': missing"):
        load_task("math", {"path": str(math)})
    assert [i.answer for i in load_task("math", {"path": str(math)}, on_bad_record="skip")] == ["2"]


def test_gsm8k_and_truthfulqa_have_no_gold(tmp_path):
    gsm = tmp_path / "questions.json"
    gsm.write_text(json.dumps([{"instruction": "Solve.", "input": "What is 2 + 3?"}]), encoding="utf-8")
    tqa = write_jsonl(tmp_path / "tqa.jsonl", [json.dumps({"question": "Q: Is water wet?\nA: yes"})])
    for task, path in (("gsm8k", gsm), ("truthfulqa", tqa)):
        (instruction,) = load_task(task, {"path": str(path)})
        assert instruction.answer is None and instruction.answer_type is None


# --- generic JSONL / JSON / CSV --------------------------------------------------------------------------------

GOOD = json.dumps({"q": "What is 2 + 2?", "a": 4})
BAD_LINES = {
    2: ("{not json", "<json>", "malformed JSON line"),
    3: (json.dumps({"a": 1}), "q", "missing"),
    4: (json.dumps({"q": ["a", "list"], "a": 1}), "q", "expected a string, got list"),
    5: (json.dumps({"q": "   ", "a": 1}), "q", "empty"),
    6: (json.dumps({"q": "What is x?", "a": "many"}), "a", "expected a number"),
    7: (json.dumps(["not", "an", "object"]), "<record>", "expected an object, got list"),
}
JSONL_OPTIONS = {"prompt_field": "q", "answer_field": "a", "answer_type": "number"}


@pytest.mark.parametrize("line", sorted(BAD_LINES))
def test_jsonl_bad_record_error_names_file_line_field(tmp_path, line):
    content, field, problem = BAD_LINES[line]
    lines = [GOOD] + [GOOD] * (line - 2) + [content]
    path = write_jsonl(tmp_path / "data.jsonl", lines)
    with pytest.raises(TaskDataError) as info:
        load_task("jsonl", {"path": str(path), **JSONL_OPTIONS})
    assert str(info.value).startswith(f"{path}:{line}: field {field!r}: ")
    assert problem in info.value.problem


def test_jsonl_skip_logs_and_counts_bad_records(tmp_path, caplog):
    lines = [GOOD] + [BAD_LINES[n][0] for n in sorted(BAD_LINES)] + ["", json.dumps({"q": "Last?", "a": "1,000"})]
    path = write_jsonl(tmp_path / "data.jsonl", lines)
    with caplog.at_level(logging.WARNING, logger="sparta.tasks"):
        loaded = load_task("jsonl", {"path": str(path), **JSONL_OPTIONS, "on_bad_record": "skip"})
    assert [(i.id, i.answer) for i in loaded] == [("data-00000", "4"), ("data-00007", "1000")]
    assert [e.location.line for e in loaded.bad_records] == sorted(BAD_LINES)
    assert sum("skipping bad record" in r.message for r in caplog.records) == len(BAD_LINES)
    assert any("skipped 6 bad record(s)" in r.message for r in caplog.records)


def test_jsonl_field_mapping_ids_domain_and_meta(tmp_path):
    path = write_jsonl(
        tmp_path / "set.jsonl",
        [
            json.dumps({"key": "x1", "prompt": "Say hi.", "gold": "hi", "level": 3}),
            json.dumps({"key": 7, "prompt": "Say yo.", "gold": "yo"}),
        ],
    )
    loaded = load_task(
        "jsonl",
        {
            "path": str(path),
            "prompt_field": "prompt",
            "answer_field": "gold",
            "id_field": "key",
            "id_prefix": "greet",
            "domain": "chat",
            "meta_fields": ["level"],
        },
    )
    assert loaded == [
        Instruction("greet-x1", "Say hi.", "chat", "hi", "text", {"level": 3}),
        Instruction("greet-7", "Say yo.", "chat", "yo", "text", {}),
    ]


def test_duplicate_ids_are_bad_records(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [json.dumps({"id": "a", "p": "one"}), json.dumps({"id": "a", "p": "two"})])
    with pytest.raises(TaskDataError, match=r"d.jsonl:2: field 'id': duplicate id 'd-a' \(first at .*d.jsonl:1\)"):
        load_task("jsonl", {"path": str(path), "prompt_field": "p", "id_field": "id"})


def test_json_list_object_and_records_key(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"p": "a?"}, {"p": "b?"}]), encoding="utf-8")
    assert [i.id for i in load_task("json", {"path": str(listed), "prompt_field": "p"})] == ["list-00000", "list-00001"]

    keyed = tmp_path / "keyed.json"
    keyed.write_text(json.dumps({"meta": {"skip": [1, {"x": "}"}]}, "rows": {"k1": {"p": "a?"}, "k2": {"p": "b?"}}}))
    loaded = load_task("json", {"path": str(keyed), "prompt_field": "p", "records_key": "rows", "id_prefix": ""})
    assert [(i.id, i.text) for i in loaded] == [("k1", "a?"), ("k2", "b?")]


def test_json_record_lines_and_malformed_file(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[\n  {"p": "a?"},\n\n  {"p": 3},\n  {"p": "c?"}\n]\n', encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"rows.json:4: field 'p': expected a string, got int"):
        load_task("json", {"path": str(path), "prompt_field": "p"})

    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"p": "a?"},\n  {"p": "b?",,}\n]\n', encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"broken.json:3: field '<json>': malformed JSON"):
        load_task("json", {"path": str(broken), "prompt_field": "p"}, on_bad_record="skip")

    scalar = tmp_path / "scalar.json"
    scalar.write_text("42", encoding="utf-8")
    with pytest.raises(TaskDataError, match="expected a list of records or an object of records"):
        load_task("json", {"path": str(scalar), "prompt_field": "p"})


def test_csv_rows_with_multiline_fields(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text('question,answer\n"Two\nlines?",B\nShort?,\n"Three?",C\n', encoding="utf-8")
    options = {"path": str(path), "prompt_field": "question", "answer_field": "answer", "answer_type": "choice"}
    with pytest.raises(TaskDataError, match=r"qa.csv:4: field 'answer': empty"):
        load_task("csv", options)
    loaded = load_task("csv", options, on_bad_record="skip")
    assert [(i.id, i.text, i.answer) for i in loaded] == [("qa-00000", "Two\nlines?", "B"), ("qa-00002", "Three?", "C")]


def test_missing_column_in_csv(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text\nhello\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"t.csv:2: field 'prompt': missing"):
        load_task("csv", {"path": str(path), "prompt_field": "prompt"})


# --- options and registry ------------------------------------------------------------------------------------


def test_option_errors_name_the_option(tmp_path):
    with pytest.raises(TaskOptionsError, match=r"task 'jsonl': option 'path': Field required"):
        load_task("jsonl", {"prompt_field": "q"})
    with pytest.raises(TaskOptionsError, match=r"option 'pth': unknown option \(known: .*path"):
        load_task("math", {"pth": "x"})
    with pytest.raises(TaskOptionsError, match=r"unknown answer_type 'numbr'"):
        load_task("jsonl", {"path": "x", "prompt_field": "q", "answer_field": "a", "answer_type": "numbr"})
    with pytest.raises(TaskOptionsError, match="answer_type needs answer_field"):
        load_task("jsonl", {"path": "x", "prompt_field": "q", "answer_type": "number"})
    with pytest.raises(FileNotFoundError, match="nothere.jsonl"):
        load_task("jsonl", {"path": str(tmp_path / "nothere.jsonl"), "prompt_field": "q"})
    with pytest.raises(ValueError, match="on_bad_record"):
        load_task("jsonl", {"path": "x", "prompt_field": "q"}, on_bad_record="ignore")


def test_registry_names_and_unknown_task():
    assert {
        "math",
        "gsm8k",
        "com2",
        "normad",
        "knowledge_crosswords",
        "truthfulqa",
        "jsonl",
        "json",
        "csv",
        "hf_dataset",
        "procedural",
    } <= set(task_names())
    with pytest.raises(KeyError, match="unknown task 'mmlu'; known: .*procedural"):
        load_task("mmlu", {})


def test_a_task_with_no_good_records_fails(tmp_path):
    path = write_jsonl(tmp_path / "empty.jsonl", [json.dumps({"x": 1})])
    with pytest.raises(ValueError, match=r"task 'jsonl' has no instructions \(1 bad record"):
        load_task("jsonl", {"path": str(path), "prompt_field": "q", "on_bad_record": "skip"})


# --- Hugging Face datasets -----------------------------------------------------------------------------------


def test_hf_dataset_from_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    train = datasets.Dataset.from_dict({"question": ["2+2?", "", "3+3?"], "label": ["4", "5", "6"]})
    test = datasets.Dataset.from_dict({"question": ["1+1?"], "label": ["2"]})
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "dd"))
    train.save_to_disk(str(tmp_path / "single"))
    options = {"prompt_field": "question", "answer_field": "label", "answer_type": "number", "domain": "math"}

    with pytest.raises(TaskDataError, match=r"dd\[train\]: row 1: field 'question': empty"):
        load_task("hf_dataset", {"path": str(tmp_path / "dd"), **options})
    loaded = load_task("hf_dataset", {"path": str(tmp_path / "dd"), **options}, on_bad_record="skip")
    assert [(i.id, i.answer, i.domain) for i in loaded] == [
        ("dd-train-00000", "4", "math"),
        ("dd-train-00002", "6", "math"),
    ]

    (only,) = load_task("hf_dataset", {"path": str(tmp_path / "dd"), "split": "test", **options})
    assert only == Instruction("dd-test-00000", "1+1?", "math", "2", "number", {})
    assert len(load_task("hf_dataset", {"path": str(tmp_path / "single"), **options, "on_bad_record": "skip"})) == 2
    with pytest.raises(TaskOptionsError, match=r"option 'split': .* no split 'valid'; splits: \['test', 'train'\]"):
        load_task("hf_dataset", {"path": str(tmp_path / "dd"), "split": "valid", **options})


def test_mixture_combines_parts_with_a_seeded_limit():
    from sparta.tasks import load_task

    a = load_task("procedural", {"size": 20, "seed": 0, "domains": ["arithmetic"]})
    mixed = load_task(
        "mixture",
        {
            "parts": [
                {"task": "procedural", "options": {"size": 20, "seed": 0, "domains": ["arithmetic"]}},
                {"task": "procedural", "options": {"size": 50, "seed": 0, "domains": ["yes_no"]}, "limit": 5},
            ]
        },
    )
    assert [x.id for x in mixed[:20]] == [x.id for x in a]
    assert len(mixed) == 25 and all(x.domain == "yes_no" for x in mixed[20:])
    again = load_task(
        "mixture",
        {
            "parts": [
                {"task": "procedural", "options": {"size": 20, "seed": 0, "domains": ["arithmetic"]}},
                {"task": "procedural", "options": {"size": 50, "seed": 0, "domains": ["yes_no"]}, "limit": 5},
            ]
        },
    )
    assert again == mixed  # the limited choice is seeded


def test_mixture_rejects_colliding_ids():
    import pytest

    from sparta.tasks import load_task

    part = {"task": "procedural", "options": {"size": 10, "seed": 0}}
    with pytest.raises(ValueError, match="collide"):
        load_task("mixture", {"parts": [part, part]})


class _CountingId(str):
    """An instruction id that counts how often it is compared for equality."""

    comparisons = 0

    def __eq__(self, other):
        _CountingId.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_mixture_checks_ids_in_linear_time(monkeypatch):
    from sparta.tasks import TASKS, TaskError, load_task

    n = 1500

    def counting_ids(options, *, on_bad_record="error"):
        prefix = options.get("prefix", "")
        return [Instruction(id=_CountingId(f"{prefix}{i}"), text=f"item {i}") for i in range(n)]

    monkeypatch.setitem(TASKS._entries, "counting-ids", counting_ids)
    _CountingId.comparisons = 0
    mixed = load_task(
        "mixture", {"parts": [{"task": "counting-ids"}, {"task": "counting-ids", "options": {"prefix": "b"}}]}
    )
    assert len(mixed) == 2 * n
    # a pairwise check (ids.count per id) compares about (2n)^2 = 9 million times; hashing compares almost never
    assert _CountingId.comparisons < 2 * n
    with pytest.raises(TaskError, match=r"collide across parts, e\.g\. \['0', '1', '10'\]"):
        load_task("mixture", {"parts": [{"task": "counting-ids"}, {"task": "counting-ids"}]})


def test_json_record_lines_survive_tricky_strings_and_repeated_keys(tmp_path):
    tricky = tmp_path / "tricky.json"
    tricky.write_text('[{"p": "a [b] {c: d}, \\"e\\" \\\\"},\n {"p": "ok"},\n\n {"p": 3}]', encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"tricky.json:4: field 'p': expected a string, got int"):
        load_task("json", {"path": str(tricky), "prompt_field": "p"})
    loaded = load_task("json", {"path": str(tricky), "prompt_field": "p"}, on_bad_record="skip")
    assert [i.text for i in loaded] == ['a [b] {c: d}, "e" \\', "ok"]

    repeated = tmp_path / "repeated.json"
    repeated.write_text('{"rows": {\n "k1": {"p": "a?"},\n "k1": {"p": "b?"}\n}}', encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"repeated.json:3: record 'k1': field '<id>': duplicate id 'k1'"):
        load_task("json", {"path": str(repeated), "prompt_field": "p", "records_key": "rows", "id_prefix": ""})
