"""The run directory's format has one home (reports/schema.py): what the collector produces, what the writers
write and what the reader requires all come from it."""

from rtcap.loadtests.run.collect import Evidence, step_row
from rtcap.reports import rundir, schema
from rtcap.targets.transports import REGISTRY
from tests.loadtests.test_collect import WINDOW, second


def test_every_value_the_collector_produces_is_a_written_column() -> None:
    # csv.DictWriter(extrasaction="ignore") would drop a key silently: each one must be in the schema.
    evidence = Evidence(health=[{"t": 101.0, "ok": False, "error": "timed out"}],
                        publishes=[{"t": 101.0, "status": 500, "ms": 3.0, "error": "boom"}])
    for transport in ("sse", "poll", "rpc", "presence"):
        row = step_row(transport, WINDOW, [second(101, transport, [1.0])], [], evidence=evidence)
        assert set(row) - set(schema.STEP_COLUMNS) == set(), transport


def test_every_pattern_figure_of_a_transport_is_a_column() -> None:
    for record in REGISTRY:
        assert set(record.pattern_figures) <= set(schema.STEP_COLUMNS), record.name


def test_the_reader_requires_only_the_first_format_and_fills_the_rest(tmp_path) -> None:
    first = schema.columns(schema.STEP_SCHEMA, since_first=True)
    row = {name: 1 for name in first} | {"transport": "sse", "flags": "", "valid": "true"}
    schema.write_csv(tmp_path / schema.STEPS_FILE, first, [row])
    steps = rundir.read_steps(tmp_path / schema.STEPS_FILE)
    assert set(schema.STEP_COLUMNS) <= set(steps.columns)
    later = schema.columns(schema.STEP_SCHEMA, since_first=False, kind="number")
    assert steps[list(later)].isna().all().all()


def test_both_meta_writers_build_the_same_shape() -> None:
    meta = schema.build_meta(name="x", transports=["sse"], steps=[1], hold_s=None, target={}, options={}, slo={},
                             start="s", end=None, notes=[])
    for key, kind in schema.META_SHAPE.items():
        assert key == "aborted" or isinstance(meta[key], kind) or meta[key] is None, key


def test_samples_written_before_their_source_was_recorded_still_load(tmp_path) -> None:
    assert "source" in schema.SAMPLE_COLUMNS and "source" not in schema.columns(schema.SAMPLE_SCHEMA, since_first=True)
    first = schema.columns(schema.SAMPLE_SCHEMA, since_first=True)
    row = {name: 1 for name in first} | {"transport": "sse", "role": "target", "phase": "hold"}
    schema.write_csv(tmp_path / schema.SAMPLES_FILE, first, [row])
    samples = rundir.read_samples(tmp_path / schema.SAMPLES_FILE)
    assert list(samples["source"]) == [""] and samples["tcp_outgoing"].isna().all()
    schema.write_samples(tmp_path, [row | {"source": "agent:http://10.0.0.5:9120"}])
    assert list(rundir.read_samples(tmp_path / schema.SAMPLES_FILE)["source"]) == ["agent:http://10.0.0.5:9120"]
