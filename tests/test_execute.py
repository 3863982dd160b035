"""The local grid's progress: a bar on a terminal, plain lines in a log, nothing when quiet."""

import io

from bench.execute import GridProgress
from bench.store import RunStore

from conftest import tiny_spec


class Recording(io.StringIO):
    def isatty(self):
        return False


def test_progress_in_a_log_is_plain_lines_when_the_count_changes(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    specs = [tiny_spec("dense", seed=seed) for seed in range(3)]
    stream = Recording()
    epochs = {specs[0].run_id: 10, specs[1].run_id: 20, specs[2].run_id: 30}
    progress = GridProgress(specs, store, enabled=True, stream=stream, epochs=epochs)
    monkeypatch.setattr(GridProgress, "LINE_SECONDS", 0)
    progress.advance()
    assert stream.getvalue() == "runs: 0/3 ended (0 failed), 0/60 epochs, 0m00s elapsed\n"
    progress.advance()  # nothing changed: no line
    assert stream.getvalue().count("\n") == 1
    store.run_dir(specs[0].run_id).mkdir(parents=True)
    (store.run_dir(specs[0].run_id) / "record.parquet").write_bytes(b"")
    (store.run_dir(specs[1].run_id)).mkdir(parents=True)
    (store.run_dir(specs[1].run_id) / "failed.json").write_text("{}")
    progress.start -= 60  # a minute for the 30 epochs ended: 30 left take about another minute
    progress.advance()
    assert stream.getvalue().splitlines()[-1] == "runs: 2/3 ended (1 failed), 30/60 epochs, 1m00s elapsed, about 1m00s left"
    progress.close()
    assert "\r" not in stream.getvalue()  # no bar in a log


def test_no_progress_at_all_when_quiet(tmp_path):
    stream = Recording()
    progress = GridProgress([tiny_spec("dense")], RunStore(tmp_path), enabled=False, stream=stream)
    progress.advance()
    progress.close()
    assert stream.getvalue() == ""
