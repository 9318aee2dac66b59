"""ProsQA path classes, each on hand-written outputs for one official problem."""

import pytest

from latentcot.analysis.paths import (CORRECT_LABEL, CORRECT_PATH, HALLUCINATION, INCORRECT_LABEL, LONGER_PATH,
                                      PATH_CLASSES, WRONG_TARGET, classify_path, path_counts, plot_path_classes,
                                      written_steps)
from latentcot.data.records import Record

# The first problem of the official ProsQA validation file, its graph cut to the nodes used here:
# Tom(1) -> terpus(3) -> brimpus(14) -> lempus(16) is the shortest path; terpus -> gerpus(8) -> brimpus is a
# detour; terpus -> fompus(6) leads elsewhere; Alex(4) -> rempus(5) is an edge Tom cannot reach.
NAMES = ['Davis', 'Tom', 'shumpus', 'terpus', 'Alex', 'rempus', 'fompus', 'rorpus', 'gerpus', 'lorpus', 'yerpus',
         'yimpus', 'boompus', 'scrompus', 'brimpus', 'timpus', 'lempus', 'dumpus']
EDGES = [[0, 2], [1, 3], [2, 5], [4, 5], [3, 6], [0, 6], [5, 7], [2, 7], [3, 8], [8, 9], [3, 9], [6, 10], [7, 11],
         [2, 11], [2, 12], [11, 12], [7, 13], [8, 14], [3, 14], [12, 15], [2, 15], [14, 16], [1, 17]]
RECORD = Record("... Is Tom a lempus or scrompus?", ["Tom is a terpus.", "Every terpus is a brimpus.",
                "Every brimpus is a lempus."], "Tom is a lempus.",
                extra={"idx_to_symbol": NAMES, "edges": EDGES, "root": 1, "target": 16, "neg_target": 13})


@pytest.mark.parametrize("generated,expected", [
    ("Tom is a terpus.\nEvery terpus is a brimpus.\nEvery brimpus is a lempus.\n### Tom is a lempus.", CORRECT_PATH),
    # after one thought the rest of a shortest path is still a correct path
    ("Every terpus is a brimpus.\nEvery brimpus is a lempus.\n### Tom is a lempus.", CORRECT_PATH),
    ("Every brimpus is a lempus.\n### Tom is a lempus.", CORRECT_PATH),
    ("Tom is a terpus.\nEvery terpus is a gerpus.\nEvery gerpus is a brimpus.\nEvery brimpus is a lempus.\n"
     "### Tom is a lempus.", LONGER_PATH),
    ("Every terpus is a lempus.\n### Tom is a lempus.", HALLUCINATION),  # no such edge
    ("Tom is a terpus.\nEvery brimpus is a lempus.\n### Tom is a lempus.", HALLUCINATION),  # broken chain
    ("Alex is a rempus.\n### Tom is a rempus.", HALLUCINATION),  # starts where Tom cannot be
    ("Every wumpus is a lempus.\n### Tom is a lempus.", HALLUCINATION),  # a concept not in the graph
    ("Tom is a terpus and a brimpus.\n### Tom is a lempus.", HALLUCINATION),  # not a step sentence
    ("Tom is a terpus.\nEvery terpus is a fompus.\n### Tom is a fompus.", WRONG_TARGET),
    ("### Tom is a lempus.", CORRECT_LABEL),
    ("### Tom is a scrompus.", INCORRECT_LABEL),
    ("", INCORRECT_LABEL),
])
def test_each_class(generated, expected):
    assert classify_path(RECORD, generated) == expected


def test_markers_and_latent_codes_are_not_steps():
    assert written_steps("<bol><latent_3><latent_1><eol>Every brimpus is a lempus.\n### Tom is a lempus.") == [
        "Every brimpus is a lempus."]
    assert classify_path(RECORD, "<bol><latent_3><eol>### Tom is a lempus.") == CORRECT_LABEL


def test_official_file_answers_are_correct_paths(shared_data):
    from latentcot.data.io import load_records

    records = load_records(shared_data / "prosqa_valid.json")
    texts = ["\n".join(r.steps) + "\n### " + r.answer for r in records]
    assert path_counts(records, texts) == {c: (len(records) if c == CORRECT_PATH else 0) for c in PATH_CLASSES}
    answers = ["### " + r.answer for r in records]
    assert path_counts(records, answers)[CORRECT_LABEL] == len(records)


def test_missing_graph_fields_and_plot(tmp_path):
    with pytest.raises(ValueError, match="lacks idx_to_symbol, edges, root, target"):
        classify_path(Record("q", ["a"], "b"), "Tom is a x.\n### b")
    table = {0: {**{c: 0 for c in PATH_CLASSES}, CORRECT_PATH: 3, HALLUCINATION: 1},
             1: {**{c: 0 for c in PATH_CLASSES}, CORRECT_LABEL: 4}}
    plot_path_classes(table, str(tmp_path / "paths.png"), title="t")
    assert (tmp_path / "paths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
