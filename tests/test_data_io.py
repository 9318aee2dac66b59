import json
import os
from pathlib import Path

import pytest

from conftest import BROKEN
from latentcot.data.io import (
    format_icot_line, load_records, parse_icot_line, read_icot, save_records, split_icot_steps, write_json,
)
from latentcot.data.records import DataError, Record


def test_reads_official_prosqa_with_graph_fields(shared_data):
    records = load_records(shared_data / "prosqa_valid.json")
    assert len(records) == 300
    first = records[0]
    assert first.steps[0] == "Tom is a terpus."
    assert first.answer == "Tom is a lempus."
    assert set(first.extra) == {"idx_to_symbol", "edges", "root", "target", "neg_target"}
    assert first.extra["idx_to_symbol"][first.extra["target"]] == "lempus"


@pytest.mark.parametrize("name,count", [("gsm8k_aug_valid.txt", 500), ("gsm8k_aug_test.txt", 1319),
                                        ("mult_4x4_valid.txt", 1000)])
def test_reads_icot_files_and_round_trips_them_exactly(shared_data, name, count):
    path = shared_data / name
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = read_icot(path)
    assert len(records) == count
    assert [format_icot_line(r) for r in records] == lines


def test_gsm8k_steps_are_bracket_groups(shared_data):
    record = read_icot(shared_data / "gsm8k_aug_valid.txt")[0]
    assert record.steps == ["<<4-2=2>>", "<<2/.5=4>>", "<<12/4=3>>", "<<100*3=300>>"]
    assert record.answer == "300"
    assert record.question.endswith("How much does he pay per year?")


def test_multiplication_steps_are_partial_products(shared_data):
    record = read_icot(shared_data / "mult_4x4_valid.txt")[0]
    assert record.question == "5 6 3 2 * 7 4 3 4"
    assert record.steps[0] == "5 5 5 6 1"
    assert record.steps[1] == "0 0 6 4 9 0 ( 5 5 1 1 1 1 )"
    assert len(record.steps) == 4
    assert record.answer == "5 5 6 0 8 2 0 1"


def test_split_steps_rules():
    assert split_icot_steps(" <<1+1=2>> <<2*3=6>> ") == ["<<1+1=2>>", "<<2*3=6>>"]
    assert split_icot_steps("1 2 + 0 3 4") == ["1 2", "0 3 4"]
    assert split_icot_steps("   ") == []


# (file, where the error is, field named); the message must name all three.
BROKEN_CASES = [
    ("bad_syntax.json", "line 2 column", None),
    ("not_a_list.json", "top level", None),
    ("record_not_object.json", "record 0", None),
    ("missing_answer.json", "record 1", "answer"),
    ("steps_not_list.json", "record 0", "steps"),
    ("answer_not_string.json", "record 2", "answer"),
    ("step_not_string.jsonl", "line 2", "steps"),
    ("empty_question.jsonl", "line 2", "question"),
    ("bad_line.jsonl", "line 3", None),
    ("no_pipes.txt", "line 2", "question"),
    ("no_hashes.txt", "line 3", "answer"),
    ("text_outside_steps.txt", "line 1", "steps"),
    ("empty_answer.txt", "line 1", "answer"),
]


@pytest.mark.parametrize("name,where,field", BROKEN_CASES)
def test_broken_file_gives_one_clear_error(name, where, field):
    path = BROKEN / name
    with pytest.raises(DataError) as info:
        load_records(path)
    message = str(info.value)
    assert str(path) in message
    assert where in message
    if field is not None:
        assert f"field '{field}'" in message
        assert info.value.field == field
    assert "\n" not in message


def test_every_broken_file_is_covered():
    assert {p.name for p in BROKEN.iterdir()} == {name for name, _, _ in BROKEN_CASES}


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_records(tmp_path / "nope.json")
    with pytest.raises(DataError, match="cannot tell the format"):
        load_records(tmp_path / "data.csv")


def test_extra_fields_survive_json_and_jsonl_round_trip(tmp_path):
    records = [Record("Is Tom a wumpus or yumpus?", ["Tom is a wumpus."], "Tom is a wumpus.",
                      {"root": 0, "edges": [[0, 1]], "note": "kept"}),
               Record("q2", [], "a2")]
    for suffix in (".json", ".jsonl"):
        path = tmp_path / f"out{suffix}"
        save_records(records, path)
        assert load_records(path) == records
    assert json.loads((tmp_path / "out.json").read_text())[0]["note"] == "kept"


def test_icot_write_round_trip(tmp_path):
    records = [parse_icot_line("3 4 * 5 6||5 1 2 + 0 8 1 2 ( 5 9 3 2 ) #### 5 9 3 2"),
               parse_icot_line("A costs 2, B 3. Sum?||<<2+3=5>> #### 5")]
    save_records(records, tmp_path / "x.txt")
    assert read_icot(tmp_path / "x.txt") == records


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "keep.json"
    good = [Record("q", ["s"], "a")]
    write_json(good, path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_json([Record("q", [], "a", {"bad": object()})], path)
    with pytest.raises(DataError, match="separator"):
        save_records([Record("q||x", [], "a")], tmp_path / "keep.txt")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.json"]


# -- durability ------------------------------------------------------------------------------------

def _record_fsyncs_and_renames(monkeypatch):
    """Events in order: ('fsync', path) and ('rename', src, dst), with paths read back from /proc."""
    import os

    events = []
    real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def rename(src, dst, *args, **kwargs):
        events.append(("rename", os.path.realpath(src), os.path.realpath(dst)))
        return real_rename(src, dst, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        events.append(("rename", os.path.realpath(src), os.path.realpath(dst)))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads file names back from /proc")
def test_atomic_write_reaches_the_disk_before_and_after_the_rename(tmp_path, monkeypatch):
    from latentcot.data.io import atomic_write

    events = _record_fsyncs_and_renames(monkeypatch)
    atomic_write(tmp_path / "out.json", "{}\n")
    (rename,) = [e for e in events if e[0] == "rename"]
    at = events.index(rename)
    assert ("fsync", rename[1]) in events[:at]  # the data, before the name points at it
    assert ("fsync", str(tmp_path.resolve())) in events[at:]  # the new name itself
    assert (tmp_path / "out.json").read_text() == "{}\n"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads file names back from /proc")
def test_a_checkpoint_directory_is_flushed_file_by_file_before_it_is_renamed(tmp_path, monkeypatch):
    from latentcot.data.io import atomic_directory

    events = _record_fsyncs_and_renames(monkeypatch)
    target = tmp_path / "checkpoints" / "epoch_001"
    with atomic_directory(target) as tmp:
        (tmp / "model.safetensors").write_bytes(b"weights")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "state.json").write_text("{}")
        tmp_name = str(tmp.resolve())
    renames = [e for e in events if e[0] == "rename" and e[1] == tmp_name]
    assert len(renames) == 1
    at = events.index(renames[0])
    before = {e[1] for e in events[:at] if e[0] == "fsync"}
    assert {f"{tmp_name}/model.safetensors", f"{tmp_name}/sub/state.json", f"{tmp_name}/sub", tmp_name} <= before
    assert ("fsync", str(target.parent.resolve())) in events[at:]
    assert (target / "sub" / "state.json").read_text() == "{}"


def test_a_torn_last_metrics_line_is_dropped_but_a_bad_middle_line_is_named(tmp_path):
    from latentcot.training.metrics import MetricsLog, read_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"type": "train", "step": 1}\n{"type": "train", "step": 2}\n{"type": "tr')
    assert [row["step"] for row in read_metrics(path)] == [1, 2]
    MetricsLog(path).truncate_after_step(1)
    assert path.read_text() == '{"type": "train", "step": 1}\n'
    path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="metrics.jsonl: line 2: not JSON"):
        read_metrics(path)
