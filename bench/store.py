"""Run directories under ``results/runs/<run_id>/`` and collecting their records.

A finished run holds config.json, history.parquet, record.parquet (one row), model.pt
(final state dict with masks, pruned weights exactly zero, and the weights stored at the
epochs its method asked for, by epoch, for the runs that rewind to them) and log.txt. A failed run holds
config.json and failed.json (the traceback). Either appears atomically: it is written into
a temporary sibling and renamed into place. Consolidated tables are always rebuilt from
the run directories: a record is read once and kept in ``results/.collected``, which is
trusted only while the record's file is the one it was read from.
"""

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow
import pyarrow.parquet as pq

from .runspec import RunSpec
from .spans import RECORDS, timed

READERS = 4  # threads reading records: a few keep two cores busy while files are opened
PARENTS_KEPT = 4  # dense runs a worker keeps read (of at most PARENT_BYTES each), last used first
PARENT_BYTES = 256 * 2 ** 20
RECORD, HISTORY, MODEL, CONFIG, LOG, FAILED = (
    "record.parquet", "history.parquet", "model.pt", "config.json", "log.txt", "failed.json")
COLLECTED = ".collected"  # under the results folder: the records collected so far (RecordCache)
STAMP = "_record_file"  # a cached record's column: the digest of the file it was read from (file_stamp)


_parents_read: dict[tuple[str, int], dict] = {}  # by (path, mtime): what torch.load gave, oldest first


def cloned(state_dict: dict) -> dict:
    """A copy of a state dict's tensors (a kept parent is never handed out to be changed)."""
    return {key: value.clone() for key, value in state_dict.items()}


class RunStore:
    def __init__(self, results: str | Path):
        self.results = Path(results)
        self.runs = self.results / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    def checkpoint_path(self, run_id: str) -> Path:
        """Where a run in flight keeps its epoch checkpoint (removed once the run is recorded)."""
        return self.runs / ".checkpoints" / f"{run_id}.pt"

    def lock_path(self, run_id: str) -> Path:
        """The file a worker holds an exclusive lock on while it executes the run."""
        return self.runs / ".locks" / f"{run_id}.lock"

    def is_running(self, run_id: str) -> bool:
        """Whether some process holds the run's lock right now."""
        path = self.lock_path(run_id)
        if not path.exists():
            return False
        with open(path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False

    def wait_while_running(self, run_id: str) -> None:
        """Block until no process holds the run's lock."""
        try:
            with open(self.lock_path(run_id)) as handle:
                fcntl.flock(handle, fcntl.LOCK_SH)
                fcntl.flock(handle, fcntl.LOCK_UN)
        except FileNotFoundError:  # cleaned away: nobody holds it
            pass

    def clean(self) -> list[Path]:
        """Remove what is not a result: submitit's files, checkpoints of finished runs, and
        leftovers of interrupted writes. Nothing a running worker uses, and never a record."""
        if not self.runs.exists():
            return []
        removed = []
        for path in self.runs.iterdir():
            run_id = path.name.split("-")[1] if path.name.startswith((".tmp-", ".trash-")) else None
            if run_id is not None and not self.is_running(run_id):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        for path in (self.runs / ".checkpoints").glob("*.pt"):
            if self.is_done(path.stem):
                path.unlink()
                removed.append(path)
        locks = list((self.runs / ".locks").glob("*.lock"))
        if not any(self.is_running(lock.stem) for lock in locks):
            for lock in locks:
                lock.unlink()
            shutil.rmtree(self.results / ".submitit", ignore_errors=True)
            removed += [*locks, self.results / ".submitit"]
        return removed

    def is_done(self, run_id: str) -> bool:
        return (self.run_dir(run_id) / RECORD).is_file()

    def has_failed(self, run_id: str) -> bool:
        return (self.run_dir(run_id) / FAILED).is_file()

    def failure(self, run_id: str) -> dict | None:
        path = self.run_dir(run_id) / FAILED
        return json.loads(path.read_text()) if path.is_file() else None

    def failures(self, run_ids) -> dict[str, str]:
        """run_id -> error of every one of the runs that failed or never finished."""
        out = {}
        for run_id in dict.fromkeys(run_ids):
            if not self.is_done(run_id):
                failure = self.failure(run_id)
                out[run_id] = failure["error"] if failure else "not run"
        return out

    def _publish(self, spec: RunSpec, write) -> Path:
        """Write a run directory aside with ``write(tmp_dir)``, then rename it into place."""
        self.runs.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{spec.run_id}-", dir=self.runs))
        (tmp / CONFIG).write_text(json.dumps(spec.to_json(), indent=2, sort_keys=True))
        write(tmp)
        final = self.run_dir(spec.run_id)
        if final.exists() and not self.is_done(spec.run_id):
            stale = self.runs / f".trash-{spec.run_id}-{uuid.uuid4().hex[:8]}"
            os.rename(final, stale)  # an earlier failure or a corrupt record: replace it
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:  # another process published the same run first
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    @timed(RECORDS)
    def write_run(self, spec: RunSpec, record: dict, history: list[dict], state_dict: dict, log: str,
                  stored: dict[int, dict] | None = None) -> Path:
        import torch  # here, so that reading records never imports torch

        def write(tmp: Path):
            pd.DataFrame(history).to_parquet(tmp / HISTORY)
            torch.save({"state_dict": state_dict, "stored": stored or {}}, tmp / MODEL)
            (tmp / LOG).write_text(log)
            pd.DataFrame([record]).to_parquet(tmp / RECORD)
        return self._publish(spec, write)

    @timed(RECORDS)
    def write_failure(self, spec: RunSpec, error: str, log: str) -> Path:
        def write(tmp: Path):
            (tmp / LOG).write_text(log)
            (tmp / FAILED).write_text(json.dumps({"run_id": spec.run_id, "status": "failed", "error": error},
                                                 indent=2))
        return self._publish(spec, write)

    @timed(RECORDS)
    def load_parent(self, run_id: str):
        """The finished run ``run_id`` as a ``bench.train.Parent``: its weights, record and
        stored weights, as copies. A worker prunes the same few dense runs many times, and
        unpickling one with its stored epochs costs more than a short run's epoch, so the
        last ``PARENTS_KEPT`` read (if small) are kept, by path and modification time."""
        import torch

        from .train import Parent

        path = self.run_dir(run_id) / MODEL
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns)
        saved = _parents_read.pop(key, None)
        if saved is None:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        if stat.st_size <= PARENT_BYTES:
            _parents_read[key] = saved
            while len(_parents_read) > PARENTS_KEPT:
                del _parents_read[next(iter(_parents_read))]
        return Parent(cloned(saved["state_dict"]), self.read_record(run_id),
                      {epoch: cloned(weights) for epoch, weights in saved.get("stored", {}).items()})

    def discard_corrupt(self, run_id: str) -> str | None:
        """If the finished run's record does not read (truncated, corrupt), move the run
        directory aside, so the run is executed again, and say what was wrong."""
        path = self.run_dir(run_id) / RECORD
        if not path.is_file():
            return None
        try:
            pd.read_parquet(path)
            return None
        except (OSError, pyarrow.ArrowException) as error:
            stale = self.runs / f".trash-{run_id}-{uuid.uuid4().hex[:8]}"
            os.rename(self.run_dir(run_id), stale)
            shutil.rmtree(stale, ignore_errors=True)
            return f"{path}: {error}"

    def read_history(self, run_id: str) -> pd.DataFrame:
        return pd.read_parquet(self.run_dir(run_id) / HISTORY)

    def read_record(self, run_id: str) -> dict:
        return pd.read_parquet(self.run_dir(run_id) / RECORD).iloc[0].to_dict()

    def collect(self, run_ids) -> tuple[pd.DataFrame, dict[str, str]]:
        """Records of the given finished runs, in the order given, and the unreadable ones with
        the reason. A record read once is kept in ``results/.collected`` (``RecordCache``) and
        taken from there while its file is unchanged; the others are read by a few threads (the
        parquet reader releases the GIL) and added to it."""
        def read(run_id: str):
            path = self.run_dir(run_id) / RECORD
            try:
                return pq.ParquetFile(path).read(), None
            except (OSError, pyarrow.ArrowException) as error:
                return None, f"{path}: {error}"

        asked = list(dict.fromkeys(run_ids))
        cache = RecordCache(self.results / COLLECTED)
        with ThreadPoolExecutor(READERS) as pool:
            stamps = {run_id: stamp for run_id, stamp in
                      zip(asked, pool.map(lambda run_id: file_stamp(self.run_dir(run_id) / RECORD), asked))
                      if stamp is not None}
            found = cache.find(stamps)
            missing = [run_id for run_id in stamps if run_id not in found]
            read_back = dict(zip(missing, pool.map(read, missing)))
        broken = {run_id: error for run_id, (_, error) in read_back.items() if error is not None}
        found.update(cache.add({run_id: (table, stamps[run_id]) for run_id, (table, _) in read_back.items()
                                if table is not None}))
        order = [run_id for run_id in stamps if run_id in found]
        if not order:
            return pd.DataFrame(), broken
        tables = cache.take(order, found)
        try:
            frame = pyarrow.concat_tables(tables, promote_options="default").to_pandas()
        except pyarrow.ArrowTypeError:  # a name two methods type differently (mask_dynamics: a fraction, a flag)
            frame = pd.concat([table.to_pandas() for table in tables], ignore_index=True)
        position = {run_id: i for i, run_id in enumerate(order)}
        return frame.iloc[frame["run_id"].map(position).argsort()].reset_index(drop=True), broken


def file_stamp(path: Path) -> str | None:
    """A digest of the file's bytes, None if there is no file. (Its inode, time and size
    would be cheaper, but a run written again within a clock tick can have all three alike.)"""
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    except FileNotFoundError:
        return None


class RecordCache:
    """Records already read, as shards ``<folder>/<schema hash>.parquet``: the records of one
    shard have the same columns and types, and each row the ``STAMP`` of the record file it
    was read from. A row counts only while that file is unchanged. Shards are written aside
    and renamed into place, so readers never see half of one; a shard that does not read is
    passed over, and one that cannot be written is left out: the cache only ever saves time."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.shards: dict[str, pyarrow.Table] = {}
        for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
            try:
                self.shards[path.stem] = pq.read_table(path)
            except (OSError, pyarrow.ArrowException):
                continue

    def find(self, stamps: dict[str, str]) -> dict[str, tuple[str, int]]:
        """run_id -> (shard, row) of the runs whose record is cached as ``stamps`` has its file."""
        found = {}
        for name, shard in self.shards.items():
            for row, (run_id, stamp) in enumerate(zip(shard["run_id"].to_pylist(), shard[STAMP].to_pylist())):
                if stamps.get(run_id) == stamp:
                    found[run_id] = (name, row)
        return found

    def add(self, read: dict[str, tuple[pyarrow.Table, str]]) -> dict[str, tuple[str, int]]:
        """Add records just read (run_id -> (table, stamp)), replacing older rows of the same
        runs, and write the shards that changed; returns where each one now is."""
        by_shard: dict[str, list] = {}
        for run_id, (table, stamp) in read.items():
            table = table.replace_schema_metadata(None)
            table = table.append_column(STAMP, pyarrow.array([stamp], pyarrow.string()))
            name = hashlib.sha256(table.schema.to_string().encode()).hexdigest()[:16]
            by_shard.setdefault(name, []).append((run_id, table))
        where = {}
        for name, added in by_shard.items():
            ids = {run_id for run_id, _ in added}
            kept = self.shards.get(name)
            if kept is not None:
                kept = kept.filter(pyarrow.array([run_id not in ids for run_id in kept["run_id"].to_pylist()]))
            shard = pyarrow.concat_tables([*([kept] if kept is not None else []), *(table for _, table in added)])
            start = shard.num_rows - len(added)
            where.update({run_id: (name, start + i) for i, (run_id, _) in enumerate(added)})
            self.shards[name] = shard
            self.write(name, shard)
        return where

    def write(self, name: str, shard: pyarrow.Table) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            pq.write_table(shard, tmp)
            os.replace(tmp, self.folder / f"{name}.parquet")
        except OSError:
            return

    def take(self, run_ids: list[str], where: dict[str, tuple[str, int]]) -> list[pyarrow.Table]:
        """The cached records of ``run_ids``, one table per shard, without their stamps."""
        rows: dict[str, list[int]] = {}
        for run_id in run_ids:
            name, row = where[run_id]
            rows.setdefault(name, []).append(row)
        return [self.shards[name].take(pyarrow.array(picked)).drop_columns([STAMP]) for name, picked in rows.items()]
