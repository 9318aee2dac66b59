from pathlib import Path

import pytest

from latentcot.data.multiplication import (
    MultiplicationOptions,
    digits_to_int,
    generate,
    make_record,
    operands,
    parse_icot_line,
    to_icot_line,
)

# The repository sits beside shared/, which holds iCoT's own files.
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "mult_4x4_valid.txt"


def test_reference_file_reproduced_exactly():
    if not REFERENCE.is_file():
        pytest.skip(f"iCoT reference file not found at {REFERENCE}")
    lines = REFERENCE.read_text().splitlines()
    assert len(lines) == 1000
    for number, line in enumerate(lines, 1):
        question = line.split("||")[0].strip()
        a, b, k, k2 = operands(question)
        assert (k, k2) == (4, 4)
        rebuilt = make_record(a, b, k, k2)
        assert to_icot_line(rebuilt) == line, f"line {number}"
        assert parse_icot_line(line) == rebuilt, f"line {number}"


def test_example_from_reference():
    record = make_record(2365, 4347, 4)
    assert record.question == "5 6 3 2 * 7 4 3 4"
    assert record.steps == [
        "5 5 5 6 1",
        "0 0 6 4 9 0 ( 5 5 1 1 1 1 )",
        "0 0 5 9 0 7 0 ( 5 5 6 0 2 8 0 )",
        "0 0 0 0 6 4 9 0",
    ]
    assert record.answer == "5 5 6 0 8 2 0 1"
    assert to_icot_line(record) == (
        "5 6 3 2 * 7 4 3 4||5 5 5 6 1 + 0 0 6 4 9 0 ( 5 5 1 1 1 1 ) + 0 0 5 9 0 7 0 ( 5 5 6 0 2 8 0 )"
        " + 0 0 0 0 6 4 9 0 #### 5 5 6 0 8 2 0 1"
    )


def _final_sum(record):
    last = record.steps[-1]
    if len(record.steps) == 1:
        return digits_to_int(last)
    # The last step has no running sum of its own: the previous sum plus the last partial product.
    previous = record.steps[-2]
    prev_sum = digits_to_int(previous.split("(")[1].rstrip(")") if "(" in previous else previous)
    return prev_sum + digits_to_int(last)


@pytest.mark.parametrize("k", [4, 5, 9])
def test_generated_products(k):
    records = generate(200, seed=k, options=MultiplicationOptions(k=k))
    assert len(records) == 200
    for record in records:
        a, b, ka, kb = operands(record.question)
        assert (ka, kb) == (k, k)
        assert len(str(a)) == k and len(str(b)) == k  # no leading zero, as in iCoT
        assert digits_to_int(record.answer) == a * b
        assert len(record.answer.split()) == 2 * k
        assert len(record.steps) == k
        assert _final_sum(record) == a * b
        # Every running sum is the sum of the partial products so far.
        total = 0
        for i, step in enumerate(record.steps):
            partial, _, running = step.partition(" ( ")
            total += digits_to_int(partial)
            assert len(partial.split()) == k + 1 + i
            if running:
                assert 0 < i < k - 1
                assert digits_to_int(running.rstrip(" )")) == total
            else:
                assert i in (0, k - 1)
        assert parse_icot_line(to_icot_line(record)) == record


@pytest.mark.parametrize("k", [4, 5, 9])
def test_deterministic(k):
    opts = MultiplicationOptions(k=k)
    assert generate(50, seed=1, options=opts) == generate(50, seed=1, options=opts)
    assert generate(50, seed=1, options=opts) != generate(50, seed=2, options=opts)


def test_distinct_problems():
    records = generate(500, seed=0, options=MultiplicationOptions(k=2))
    assert len({r.question for r in records}) == 500


def test_other_sizes():
    for k, k2 in [(20, 20), (6, 3), (3, 1), (1, 1)]:
        for record in generate(20, seed=0, options=MultiplicationOptions(k=k, k2=k2)):
            a, b, ka, kb = operands(record.question)
            assert (ka, kb) == (k, k2)
            assert digits_to_int(record.answer) == a * b
            assert len(record.answer.split()) == k + k2
            assert len(record.steps) == k2


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": 21}, {"k2": -1}, {"k2": 21}, {"k": 4.0}, {"k": True}])
def test_invalid_options(kwargs):
    with pytest.raises(ValueError):
        generate(1, options=MultiplicationOptions(**kwargs))


def test_invalid_arguments():
    with pytest.raises(ValueError):
        generate(-1)
    with pytest.raises(ValueError, match="distinct"):
        generate(82, options=MultiplicationOptions(k=1))
    with pytest.raises(ValueError):
        make_record(12345, 1, 4)
    with pytest.raises(ValueError):
        parse_icot_line("1 2 * 3 4 #### 2 0 4")
    assert generate(0) == []
