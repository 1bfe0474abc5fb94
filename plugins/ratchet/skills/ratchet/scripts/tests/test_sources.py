"""Metric sources: every kind on files the tests write (valid, missing, stale, corrupt, nan)."""

import json
import math
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest

from ratchetlib.measure import tfevents

from ratchetlib.measure import reading
from ratchetlib.core.sourcespec import parse_source
from ratchetlib.measure.sources import paths_to_clear, read_metric

EXAMPLE = pathlib.Path(__file__).resolve().parents[6] / "examples" / "train_logreg"


# ------------------------------------------------------------ event-file writer
# A minimal TensorBoard event writer, independent of the reader's decoding
# helpers: varints, protobuf fields and TFRecord framing with masked CRC-32C.

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        return key + _varint(payload)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload  # fixed 32/64-bit, already packed


def simple_value(tag: str, value: float) -> bytes:
    return _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", value))


def tensor_value(tag: str, value: float, encoding: str) -> bytes:
    """A Summary.Value holding a scalar TensorProto, encoded in one of several ways."""
    scalar_shape = _field(2, 2, b"")  # TensorShapeProto with no dims
    dtype = {"float_packed": 1, "float_unpacked": 1, "double_packed": 2, "double_unpacked": 2,
             "content_float": 1, "content_double": 2, "content_half": 19, "half_val": 19,
             "content_bfloat16": 14}[encoding]
    body = _field(1, 0, dtype) + scalar_shape
    if encoding == "float_packed":
        body += _field(5, 2, struct.pack("<f", value))
    elif encoding == "float_unpacked":
        body += _field(5, 5, struct.pack("<f", value))
    elif encoding == "double_packed":
        body += _field(6, 2, struct.pack("<d", value))
    elif encoding == "double_unpacked":
        body += _field(6, 1, struct.pack("<d", value))
    elif encoding == "content_float":
        body += _field(4, 2, struct.pack("<f", value))
    elif encoding == "content_double":
        body += _field(4, 2, struct.pack("<d", value))
    elif encoding == "content_half":
        body += _field(4, 2, struct.pack("<e", value))
    elif encoding == "half_val":
        body += _field(13, 2, _varint(struct.unpack("<H", struct.pack("<e", value))[0]))
    elif encoding == "content_bfloat16":
        body += _field(4, 2, struct.pack("<f", value)[2:])
    metadata = _field(9, 2, _field(1, 2, _field(1, 2, b"scalars")))
    return _field(1, 2, tag.encode()) + metadata + _field(8, 2, body)


def vector_value(tag: str, values) -> bytes:
    shape = _field(2, 2, _field(2, 2, _field(1, 0, len(values))))
    body = _field(1, 0, 1) + shape + _field(5, 2, b"".join(struct.pack("<f", v) for v in values))
    return _field(1, 2, tag.encode()) + _field(8, 2, body)


def event(wall_time: float, step: int, *values: bytes, file_version: str = None) -> bytes:
    msg = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, step)
    if file_version is not None:
        return msg + _field(3, 2, file_version.encode())
    return msg + _field(5, 2, b"".join(_field(1, 2, v) for v in values))


def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = _crc32c_bitwise(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked(length)) + data + struct.pack("<I", _masked(data))


def event_file(events) -> bytes:
    head = record(event(time.time(), 0, file_version="brain.Event:2"))
    return head + b"".join(record(e) for e in events)


# ------------------------------------------------------------ helpers

class SourceTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="ratchet-sources-")
        self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)
        self.since = time.time()

    def write(self, rel, content, age=None):
        """Write `content` (str or bytes) at `rel`; `age` seconds back-dates it."""
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(path, mode) as f:
            f.write(content)
        if age is not None:
            self.backdate(rel, age)
        return path

    def backdate(self, rel, age):
        t = self.since - age
        os.utime(os.path.join(self.root, rel), (t, t))

    def read(self, spec, key="val_loss", direction="min"):
        return read_metric(parse_source(spec), self.root, key, since=self.since, direction=direction)

    def assertReading(self, reading, status, value=None):
        self.assertEqual(reading.status, status, reading.detail)
        if status == "ok":
            self.assertAlmostEqual(reading.value, value, places=6)
        else:
            self.assertIsNone(reading.value)
        self.assertNotIn("\n", reading.detail)
        self.assertTrue(reading.detail)


# ------------------------------------------------------------ parsing

class ParseSourceTest(unittest.TestCase):
    def test_streams_and_plain_paths(self):
        self.assertEqual(parse_source("stdout").kind, "stdout")
        self.assertEqual(parse_source(" stderr ").kind, "stderr")
        src = parse_source("./reports/out.txt")
        self.assertEqual((src.kind, src.path, src.structured), ("text", "reports/out.txt", False))
        self.assertEqual(parse_source("./json:odd.txt").path, "json:odd.txt")
        self.assertEqual(parse_source("results#1.txt").path, "results#1.txt")

    def test_every_kind(self):
        cases = {
            "json:out/r.json#eval.loss": ("json", "out/r.json", "eval.loss", "last"),
            "jsonl:metrics.jsonl#val_loss": ("jsonl", "metrics.jsonl", "val_loss", "last"),
            "csv:log.csv": ("csv", "log.csv", None, "last"),
            "hf:out#eval_loss@best": ("hf", "out", "eval_loss", "best"),
            "hf:out/trainer_state.json@last": ("hf", "out/trainer_state.json", None, "last"),
            "hf:out": ("hf", "out", None, "last"),
            "wandb:wandb#acc": ("wandb", "wandb", "acc", "last"),
            "tensorboard:runs/**/events.out.tfevents.*#train/loss":
                ("tensorboard", "runs/**/events.out.tfevents.*", "train/loss", "last"),
            "tb:runs": ("tensorboard", "runs", None, "last"),
            "lightning:lightning_logs#val_acc": ("lightning", "lightning_logs", "val_acc", "last"),
            "JSON:a.json": ("json", "a.json", None, "last"),
        }
        for spec, (kind, path, key, pick) in cases.items():
            with self.subTest(spec=spec):
                src = parse_source(spec)
                self.assertEqual((src.kind, src.path, src.key, src.pick), (kind, path, key, pick))
                self.assertTrue(src.structured)
                self.assertEqual(src.spec, spec)

    def test_invalid_specs_name_the_fix(self):
        cases = {
            "": "empty",
            "   ": "empty",
            "jsn:a.json#x": "unknown report source kind",
            "json:a.json#": "empty key",
            "json:#loss": "names no path",
            "json:/etc/passwd#x": "relative to the repository root",
            "/tmp/report.txt": "relative to the repository root",
            "csv:../elsewhere.csv#x": "leaves the repository",
            "tensorboard:runs/../../x#t": "leaves the repository",
            "hf:out#eval_loss@max": "use @last or @best",
        }
        for spec, fragment in cases.items():
            with self.subTest(spec=spec):
                with self.assertRaises(ValueError) as cm:
                    parse_source(spec)
                self.assertIn(fragment, str(cm.exception))
                self.assertNotIn("\n", str(cm.exception))

    def test_read_metric_refuses_streams_and_bad_direction(self):
        with self.assertRaises(ValueError):
            read_metric(parse_source("stdout"), ".", "x", since=0, direction="min")
        with self.assertRaises(ValueError):
            read_metric(parse_source("json:a.json"), ".", "x", since=0, direction="up")


# ------------------------------------------------------------ freshness

class FreshnessTest(SourceTest):
    def at(self, mtime_ns):
        path = self.write("r.json", '{"val_loss": 1}')
        os.utime(path, ns=(mtime_ns, mtime_ns))
        return self.read("json:r.json").status

    def test_fine_grained_timestamps_get_only_the_clock_slack(self):
        since_ns = int(self.since * 1e9)
        self.assertEqual(self.at(since_ns + 1), "ok")
        self.assertEqual(self.at(since_ns - int(reading.MTIME_SLACK * 1e9 / 2)), "ok")
        self.assertEqual(self.at(since_ns - int(reading.MTIME_SLACK * 1e9 * 2) - 1), "stale")

    def test_whole_second_timestamps_compare_at_whole_seconds(self):
        self.since = math.floor(self.since) + 0.7
        second_ns = int(math.floor(self.since)) * 1_000_000_000
        self.assertEqual(self.at(second_ns), "ok")
        self.assertEqual(self.at(second_ns - 1_000_000_000), "stale")


# ------------------------------------------------------------ json

class JsonSourceTest(SourceTest):
    def test_dotted_key_list_index_and_literal_dotted_key(self):
        self.write("r.json", json.dumps({"eval": {"loss": 0.25}, "history": [{"loss": 3}, {"loss": 2}],
                                         "val.acc": 0.9, "as_text": " 1.5 "}))
        self.assertReading(self.read("json:r.json#eval.loss"), "ok", 0.25)
        self.assertReading(self.read("json:r.json#history.-1.loss"), "ok", 2.0)
        self.assertReading(self.read("json:r.json#history.0.loss"), "ok", 3.0)
        self.assertReading(self.read("json:r.json#val.acc"), "ok", 0.9)
        self.assertReading(self.read("json:r.json#as_text"), "ok", 1.5)
        reading = self.read("json:r.json", key="eval.loss")
        self.assertReading(reading, "ok", 0.25)
        self.assertEqual(reading.path, "r.json")

    def test_missing_file_and_key(self):
        self.assertReading(self.read("json:nope.json#x"), "missing")
        self.write("r.json", '{"a": 1, "b": {"c": 2}}')
        reading = self.read("json:r.json#b.d")
        self.assertReading(reading, "missing")
        self.assertIn("it has: a, b", reading.detail)
        self.assertReading(self.read("json:r.json#a.b"), "missing")
        self.write("n.json", '{"loss": null}')
        self.assertReading(self.read("json:n.json#loss"), "missing")

    def test_stale_file_is_never_read(self):
        self.write("r.json", '{"loss": 1}', age=30)
        reading = self.read("json:r.json#loss")
        self.assertReading(reading, "stale")
        self.assertIn("before this trial started", reading.detail)

    def test_corrupt(self):
        self.write("t.json", '{"loss": 0.5, "acc"')
        self.assertReading(self.read("json:t.json#loss"), "corrupt")
        self.write("b.json", b'{"loss": "\xff\xfe"}')
        self.assertReading(self.read("json:b.json#loss"), "corrupt")
        self.write("s.json", '{"loss": "low", "flag": true, "obj": {"_type": "histogram"}}')
        for key in ("loss", "flag", "obj"):
            self.assertReading(self.read(f"json:s.json#{key}"), "corrupt")
        self.write("deep.json", "[" * 100000 + "]" * 100000)
        self.assertReading(self.read("json:deep.json#0"), "corrupt")

    def test_not_finite(self):
        self.write("r.json", '{"a": NaN, "b": Infinity, "c": -Infinity, "d": "nan", "e": 1e400}')
        for key in "abcde":
            self.assertReading(self.read(f"json:r.json#{key}"), "not-finite")

    def test_symlink_leaving_the_repository_is_not_followed(self):
        outside = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, outside, ignore_errors=True)
        with open(os.path.join(outside, "r.json"), "w") as f:
            f.write('{"loss": 1}')
        os.symlink(os.path.join(outside, "r.json"), os.path.join(self.root, "r.json"))
        reading = self.read("json:r.json#loss")
        self.assertReading(reading, "missing")
        self.assertIn("outside the repository", reading.detail)
        self.assertEqual(paths_to_clear(parse_source("json:r.json"), self.root), [])


# ------------------------------------------------------------ jsonl

class JsonlSourceTest(SourceTest):
    def test_last_record_that_has_the_key(self):
        self.write("m.jsonl", '{"epoch": 1, "val_loss": 0.9}\n\n{"epoch": 2, "val_loss": 0.7}\n'
                              '{"epoch": 2, "train_loss": 0.5}\n{"epoch": 3, "val_loss": null}\n')
        reading = self.read("jsonl:m.jsonl")
        self.assertReading(reading, "ok", 0.7)
        self.assertIn("line 3", reading.detail)
        self.assertReading(self.read("jsonl:m.jsonl#train_loss"), "ok", 0.5)

    def test_torn_last_line_is_ignored(self):
        self.write("m.jsonl", '{"val_loss": 0.9}\n{"val_loss": 0.8}\n{"val_lo')
        reading = self.read("jsonl:m.jsonl")
        self.assertReading(reading, "ok", 0.8)
        self.assertIn("torn", reading.detail)

    def test_corrupt_line_before_the_value(self):
        self.write("m.jsonl", '{"val_loss": 0.9}\n{"val_loss": 0.8\n{"val_loss": 0.7}\n')
        self.assertReading(self.read("jsonl:m.jsonl"), "ok", 0.7)
        self.write("m.jsonl", '{"val_loss": 0.9}\nnot json\n{"epoch": 3}\n')
        reading = self.read("jsonl:m.jsonl")
        self.assertReading(reading, "corrupt")
        self.assertIn("line 2", reading.detail)

    def test_missing_file_key_and_stale(self):
        self.assertReading(self.read("jsonl:m.jsonl"), "missing")
        self.write("m.jsonl", '{"epoch": 1}\n')
        self.assertReading(self.read("jsonl:m.jsonl"), "missing")
        self.write("e.jsonl", "")
        self.assertReading(self.read("jsonl:e.jsonl"), "missing")
        self.write("old.jsonl", '{"val_loss": 0.1}\n', age=5)
        self.assertReading(self.read("jsonl:old.jsonl"), "stale")

    def test_not_finite(self):
        self.write("m.jsonl", '{"val_loss": 0.9}\n{"val_loss": NaN}\n')
        self.assertReading(self.read("jsonl:m.jsonl"), "not-finite")


# ------------------------------------------------------------ csv and lightning

class CsvSourceTest(SourceTest):
    def test_last_row_with_a_value(self):
        self.write("log.csv", "epoch,train_loss,val_loss\r\n0,1.0,0.9\r\n0,0.8,\r\n1,0.7,0.6\r\n2,0.5,\r\n")
        reading = self.read("csv:log.csv")
        self.assertReading(reading, "ok", 0.6)
        self.assertIn("row 4", reading.detail)
        self.assertReading(self.read("csv:log.csv#train_loss"), "ok", 0.5)

    def test_quoted_fields_and_no_final_newline(self):
        self.write("log.csv", 'name,val_loss\n"a, with comma",0.5\n"b\nmultiline",0.4')
        self.assertReading(self.read("csv:log.csv"), "ok", 0.4)

    def test_torn_last_row_is_ignored(self):
        self.write("log.csv", "epoch,val_loss,val_acc\n0,0.9,0.5\n1,0.8,0.6\n2,0.")
        reading = self.read("csv:log.csv")
        self.assertReading(reading, "ok", 0.8)
        self.assertIn("torn", reading.detail)

    def test_corrupt(self):
        self.write("log.csv", "epoch,val_loss\n0,0.9\n1\n2,0.7\n")
        self.assertReading(self.read("csv:log.csv"), "corrupt")
        self.write("text.csv", "epoch,val_loss\n0,low\n")
        self.assertReading(self.read("csv:text.csv"), "corrupt")
        self.write("quote.csv", 'epoch,val_loss\n0,"0.5\n')
        self.assertReading(self.read("csv:quote.csv"), "corrupt")

    def test_missing_column_file_value_and_stale(self):
        self.assertReading(self.read("csv:log.csv"), "missing")
        self.write("log.csv", "epoch,acc\n0,0.5\n")
        reading = self.read("csv:log.csv")
        self.assertReading(reading, "missing")
        self.assertIn("it has: epoch, acc", reading.detail)
        self.write("blank.csv", "epoch,val_loss\n0,\n1, \n")
        self.assertReading(self.read("csv:blank.csv"), "missing")
        self.write("empty.csv", "")
        self.assertReading(self.read("csv:empty.csv"), "missing")
        self.write("old.csv", "val_loss\n0.3\n", age=60)
        self.assertReading(self.read("csv:old.csv"), "stale")

    def test_not_finite(self):
        for text in ("nan", "inf", "-Infinity"):
            with self.subTest(text=text):
                self.write("log.csv", f"epoch,val_loss\n0,0.5\n1,{text}\n")
                self.assertReading(self.read("csv:log.csv"), "not-finite")


class LightningSourceTest(SourceTest):
    HEADER = "epoch,step,train_loss,val_loss,val_acc\n"

    def test_log_folder_picks_the_newest_version(self):
        self.write("lightning_logs/version_0/metrics.csv", self.HEADER + "0,9,1.0,0.9,0.5\n", age=3600)
        self.write("lightning_logs/version_1/metrics.csv",
                   self.HEADER + "0,9,0.9,,\n0,9,,0.7,0.6\n1,19,0.6,,\n")
        self.write("lightning_logs/version_1/hparams.yaml", "lr: 0.1\n")
        reading = self.read("lightning:lightning_logs")
        self.assertReading(reading, "ok", 0.7)
        self.assertEqual(reading.path, "lightning_logs/version_1/metrics.csv")
        self.assertReading(self.read("lightning:lightning_logs#train_loss"), "ok", 0.6)
        self.assertReading(self.read("lightning:lightning_logs/version_1#val_acc"), "ok", 0.6)
        self.assertReading(self.read("lightning:lightning_logs/version_0/metrics.csv"), "stale")

    def test_named_experiment_folder(self):
        self.write("logs/my_exp/version_3/metrics.csv", self.HEADER + "0,9,1.0,0.42,0.5\n")
        self.assertReading(self.read("lightning:logs"), "ok", 0.42)

    def test_no_new_version_is_stale(self):
        self.write("lightning_logs/version_0/metrics.csv", self.HEADER + "0,9,1.0,0.9,0.5\n", age=10)
        self.assertReading(self.read("lightning:lightning_logs"), "stale")

    def test_missing_corrupt_and_not_finite(self):
        self.assertReading(self.read("lightning:lightning_logs"), "missing")
        os.makedirs(os.path.join(self.root, "lightning_logs/version_0"))
        self.assertReading(self.read("lightning:lightning_logs"), "missing")
        self.write("lightning_logs/version_0/metrics.csv", self.HEADER + "0,9,1.0\n1,19,0.9,0.8,0.5\n")
        self.assertReading(self.read("lightning:lightning_logs"), "corrupt")
        self.write("lightning_logs/version_0/metrics.csv", self.HEADER + "0,9,1.0,nan,0.5\n")
        self.assertReading(self.read("lightning:lightning_logs"), "not-finite")


# ------------------------------------------------------------ hugging face

def trainer_state(history, **extra):
    return json.dumps({"best_metric": None, "epoch": 3.0, "global_step": 300,
                       "log_history": history, **extra}, indent=2)


HF_HISTORY = [
    {"epoch": 1.0, "loss": 0.9, "learning_rate": 5e-5, "step": 100},
    {"epoch": 1.0, "eval_loss": 0.50, "eval_accuracy": 0.80, "step": 100},
    {"epoch": 2.0, "loss": 0.6, "step": 200},
    {"epoch": 2.0, "eval_loss": 0.40, "eval_accuracy": 0.84, "step": 200},
    {"epoch": 3.0, "eval_loss": 0.45, "eval_accuracy": 0.83, "step": 300},
    {"epoch": 3.0, "train_runtime": 12.5, "train_loss": 0.7, "step": 300},
]


class HuggingFaceSourceTest(SourceTest):
    def test_last_and_best(self):
        self.write("out/trainer_state.json", trainer_state(HF_HISTORY))
        self.assertReading(self.read("hf:out/trainer_state.json", key="eval_loss"), "ok", 0.45)
        self.assertReading(self.read("hf:out/trainer_state.json@best", key="eval_loss"), "ok", 0.40)
        self.assertReading(self.read("hf:out/trainer_state.json#eval_accuracy@best", direction="max"),
                           "ok", 0.84)
        self.assertReading(self.read("hf:out/trainer_state.json#eval_accuracy@best", direction="min"),
                           "ok", 0.80)
        self.assertReading(self.read("hf:out/trainer_state.json#loss"), "ok", 0.6)

    def test_eval_prefix_fallback(self):
        self.write("out/trainer_state.json", trainer_state(HF_HISTORY))
        reading = self.read("hf:out/trainer_state.json#accuracy")
        self.assertReading(reading, "ok", 0.83)
        self.assertIn("eval_accuracy", reading.detail)

    def test_folder_picks_the_newest_state(self):
        self.write("out/checkpoint-100/trainer_state.json", trainer_state(HF_HISTORY[:2]), age=2)
        self.write("out/checkpoint-200/trainer_state.json", trainer_state(HF_HISTORY[:4]))
        reading = self.read("hf:out#eval_loss")
        self.assertReading(reading, "ok", 0.40)
        self.assertEqual(reading.path, "out/checkpoint-200/trainer_state.json")
        self.write("out/trainer_state.json", trainer_state(HF_HISTORY))
        self.assertReading(self.read("hf:out#eval_loss"), "ok", 0.45)

    def test_missing_stale_corrupt(self):
        self.assertReading(self.read("hf:out#eval_loss"), "missing")
        os.makedirs(os.path.join(self.root, "empty"))
        self.assertReading(self.read("hf:empty#eval_loss"), "missing")
        self.write("out/trainer_state.json", trainer_state(HF_HISTORY))
        self.assertReading(self.read("hf:out#eval_f1"), "missing")
        self.write("cfg/trainer_state.json", '{"epoch": 1}')
        self.assertReading(self.read("hf:cfg#eval_loss"), "missing")
        self.write("bad/trainer_state.json", '{"log_history": {"eval_loss": 1}}')
        self.assertReading(self.read("hf:bad#eval_loss"), "corrupt")
        self.write("torn/trainer_state.json", trainer_state(HF_HISTORY)[:150])
        self.assertReading(self.read("hf:torn#eval_loss"), "corrupt")
        self.write("old/checkpoint-9/trainer_state.json", trainer_state(HF_HISTORY), age=100)
        self.assertReading(self.read("hf:old#eval_loss"), "stale")

    def test_not_finite(self):
        history = HF_HISTORY[:4] + [{"epoch": 3.0, "eval_loss": float("nan"), "step": 300}]
        self.write("out/trainer_state.json", trainer_state(history))
        self.assertReading(self.read("hf:out#eval_loss"), "not-finite")
        self.assertReading(self.read("hf:out#eval_loss@best"), "ok", 0.40)
        self.write("nan/trainer_state.json", trainer_state([{"eval_loss": float("inf"), "step": 1}]))
        self.assertReading(self.read("hf:nan#eval_loss@best"), "not-finite")


# ------------------------------------------------------------ weights & biases

class WandbSourceTest(SourceTest):
    def run_folder(self, name, summary, age=None, base="wandb"):
        rel = f"{base}/{name}/files/wandb-summary.json"
        self.write(rel, summary if isinstance(summary, str) else json.dumps(summary), age=age)
        self.write(f"{base}/{name}/files/config.yaml", "lr: 0.1\n")
        return f"{base}/{name}"

    @staticmethod
    def stamp(seconds_ago=0.0):
        return time.strftime("%Y%m%d_%H%M%S", time.localtime(time.time() - seconds_ago))

    def test_latest_run_link(self):
        old = self.run_folder(f"run-{self.stamp(7200)}-aaaa1111", {"val_loss": 0.9}, age=7000)
        new = self.run_folder(f"run-{self.stamp()}-bbbb2222", {"val_loss": 0.3, "_step": 10})
        os.symlink(os.path.basename(new), os.path.join(self.root, "wandb", "latest-run"))
        reading = self.read("wandb:wandb")
        self.assertReading(reading, "ok", 0.3)
        self.assertEqual(reading.path, f"{new}/files/wandb-summary.json")
        self.assertReading(self.read("wandb:."), "ok", 0.3)
        self.assertReading(self.read(f"wandb:{old}"), "stale")

    def test_newest_run_by_name_without_link(self):
        self.run_folder(f"offline-run-{self.stamp(7200)}-aaaa1111", {"val_loss": 0.9}, age=7000)
        self.run_folder(f"offline-run-{self.stamp()}-bbbb2222", {"eval": {"loss": 0.25}, "val_loss": 0.3})
        self.assertReading(self.read("wandb:wandb"), "ok", 0.3)
        self.assertReading(self.read("wandb:wandb#eval.loss"), "ok", 0.25)

    def test_hidden_wandb_folder_under_a_project_folder(self):
        self.run_folder(f"run-{self.stamp()}-cccc3333", {"val_loss": 0.5}, base="proj/.wandb")
        self.assertReading(self.read("wandb:proj"), "ok", 0.5)

    def test_no_new_run_is_stale(self):
        self.run_folder(f"run-{self.stamp(600)}-aaaa1111", {"val_loss": 0.9}, age=590)
        self.assertReading(self.read("wandb:wandb"), "stale")

    def test_old_run_folder_rewritten_during_the_trial_is_stale(self):
        self.run_folder(f"run-{self.stamp(3 * 86400)}-aaaa1111", {"val_loss": 0.9})
        reading = self.read("wandb:wandb")
        self.assertReading(reading, "stale")
        self.assertIn("started", reading.detail)

    def test_missing(self):
        self.assertReading(self.read("wandb:wandb"), "missing")
        os.makedirs(os.path.join(self.root, "wandb"))
        self.assertReading(self.read("wandb:wandb"), "missing")
        os.makedirs(os.path.join(self.root, "wandb", f"run-{self.stamp()}-dddd4444", "files"))
        self.assertReading(self.read("wandb:wandb"), "missing")
        self.run_folder(f"run-{self.stamp()}-eeee5555", {"acc": 0.5})
        reading = self.read("wandb:wandb")
        self.assertReading(reading, "missing")
        self.assertIn("it has: acc", reading.detail)
        self.write("notdir", "x")
        self.assertReading(self.read("wandb:notdir"), "missing")

    def test_corrupt_and_not_finite(self):
        run = self.run_folder(f"run-{self.stamp()}-aaaa1111", '{"val_loss": 0.3, "acc"')
        self.assertReading(self.read(f"wandb:{run}"), "corrupt")
        run = self.run_folder(f"run-{self.stamp()}-bbbb2222", '{"val_loss": NaN}')
        self.assertReading(self.read(f"wandb:{run}"), "not-finite")


# ------------------------------------------------------------ tensorboard

class Crc32cTest(unittest.TestCase):
    def test_known_vectors(self):
        self.assertEqual(tfevents.crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(tfevents.crc32c(b""), 0)
        self.assertEqual(tfevents.crc32c(bytes(32)), 0x8A9136AA)
        data = os.urandom(1000)
        self.assertEqual(tfevents.crc32c(data), _crc32c_bitwise(data))
        self.assertEqual(tfevents.masked_crc32c(data), _masked(data))


class TensorBoardSourceTest(SourceTest):
    def events(self, rel, *events, age=None):
        return self.write(rel, event_file(events), age=age)

    def test_simple_value_last_by_wall_time(self):
        t = time.time()
        self.events("runs/a/events.out.tfevents.1.host",
                     event(t, 1, simple_value("loss", 0.9), simple_value("acc", 0.5)),
                     event(t + 1, 2, simple_value("loss", 0.7)),
                     event(t + 2, 3, simple_value("acc", 0.6)))
        reading = self.read("tensorboard:runs/a/events.out.tfevents.*#loss")
        self.assertReading(reading, "ok", 0.7)
        self.assertEqual(reading.path, "runs/a/events.out.tfevents.1.host")
        self.assertIn("step 2", reading.detail)
        self.assertReading(self.read("tensorboard:runs#acc"), "ok", 0.6)

    def test_tensor_encoded_scalars(self):
        encodings = ("float_packed", "float_unpacked", "double_packed", "double_unpacked", "content_float",
                     "content_double", "content_half", "half_val", "content_bfloat16")
        for encoding in encodings:
            with self.subTest(encoding=encoding):
                rel = f"tf2/{encoding}/events.out.tfevents.1.host.v2"
                self.events(rel, event(time.time(), 5, tensor_value("val/loss", 0.375, encoding)))
                self.assertReading(self.read(f"tensorboard:{rel}#val/loss"), "ok", 0.375)

    def test_non_scalar_tensor_is_not_a_value(self):
        t = time.time()
        self.events("runs/events.out.tfevents.1.host",
                    event(t, 1, simple_value("loss", 0.9)),
                    event(t + 1, 2, vector_value("loss", [0.1, 0.2])))
        self.assertReading(self.read("tensorboard:runs#loss"), "ok", 0.9)

    def test_across_files_the_newest_event_wins_and_stale_files_are_ignored(self):
        t = time.time()
        self.events("runs/old/events.out.tfevents.0.host", event(t + 50, 9, simple_value("loss", 0.1)),
                    age=300)
        self.events("runs/train/events.out.tfevents.1.host", event(t + 2, 20, simple_value("loss", 0.4)))
        self.events("runs/val/events.out.tfevents.2.host", event(t + 1, 20, simple_value("loss", 0.5)),
                    event(t + 1, 21, simple_value("val_loss", 0.6)))
        self.assertReading(self.read("tensorboard:runs/**/events.out.tfevents.*#loss"), "ok", 0.4)
        self.assertReading(self.read("tensorboard:runs#val_loss"), "ok", 0.6)
        self.assertReading(self.read("tensorboard:runs/old#loss"), "stale")

    def test_missing(self):
        self.assertReading(self.read("tensorboard:runs#loss"), "missing")
        self.events("runs/events.out.tfevents.1.host", event(time.time(), 1, simple_value("acc", 0.5)))
        reading = self.read("tensorboard:runs#loss")
        self.assertReading(reading, "missing")
        self.assertIn("no scalar 'loss'", reading.detail)

    def test_truncated_last_record_is_ignored(self):
        t = time.time()
        whole = event_file([event(t, 1, simple_value("loss", 0.8)), event(t + 1, 2, simple_value("loss", 0.6))])
        last = len(record(event(t + 1, 2, simple_value("loss", 0.6))))
        for cut in (1, 4, last - 12, last - 13, last - 1):
            with self.subTest(cut=cut):
                self.write("runs/events.out.tfevents.1.host", whole[:-cut])
                reading = self.read("tensorboard:runs#loss")
                self.assertReading(reading, "ok", 0.8)
                self.assertIn("truncated", reading.detail)

    def test_bad_checksums_are_corrupt(self):
        t = time.time()
        good = record(event(t, 1, simple_value("loss", 0.8)))
        target = bytearray(record(event(t + 1, 2, simple_value("loss", 0.6))))
        head = record(event(t, 0, file_version="brain.Event:2"))
        flipped_data = bytearray(target)
        flipped_data[-6] ^= 0x01  # inside the float of the last event
        self.write("a/events.out.tfevents.1.host", head + good + bytes(flipped_data))
        reading = self.read("tensorboard:a#loss")
        self.assertReading(reading, "corrupt")
        self.assertIn("data checksum", reading.detail)
        flipped_crc = bytearray(target)
        flipped_crc[-1] ^= 0x80
        self.write("b/events.out.tfevents.1.host", head + good + bytes(flipped_crc))
        self.assertReading(self.read("tensorboard:b#loss"), "corrupt")
        flipped_length = bytearray(target)
        flipped_length[0] ^= 0x02
        self.write("c/events.out.tfevents.1.host", head + bytes(flipped_length) + good)
        reading = self.read("tensorboard:c#loss")
        self.assertReading(reading, "corrupt")
        self.assertIn("length checksum", reading.detail)

    def test_garbage_protobuf_with_valid_crc_is_corrupt(self):
        self.write("g/events.out.tfevents.1.host", record(b"\x2a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xffloss"))
        self.assertReading(self.read("tensorboard:g#loss"), "corrupt")
        self.write("h/events.out.tfevents.1.host", record(b"\x2a\x10\x0a\x04loss"))
        self.assertReading(self.read("tensorboard:h#loss"), "corrupt")

    def test_not_finite(self):
        t = time.time()
        self.events("runs/events.out.tfevents.1.host",
                    event(t, 1, simple_value("loss", 0.5)), event(t + 1, 2, simple_value("loss", math.nan)))
        self.assertReading(self.read("tensorboard:runs#loss"), "not-finite")
        self.events("inf/events.out.tfevents.1.host",
                    event(t, 1, tensor_value("loss", math.inf, "double_packed")))
        self.assertReading(self.read("tensorboard:inf#loss"), "not-finite")

    def test_negative_step_and_metric_name_default(self):
        self.events("runs/events.out.tfevents.1.host", event(time.time(), -1, simple_value("val_loss", 0.25)))
        reading = self.read("tensorboard:runs")
        self.assertReading(reading, "ok", 0.25)
        self.assertIn("step -1", reading.detail)


# ------------------------------------------------------------ clearing

class PathsToClearTest(SourceTest):
    def test_single_file_sources_list_the_existing_file(self):
        self.write("m.jsonl", "{}\n")
        self.write("r.json", "{}")
        self.write("log.csv", "a\n")
        self.write("report.txt", "x: 1\n")
        self.write("lightning_logs/version_0/metrics.csv", "a\n")
        for spec, expected in {"jsonl:m.jsonl#x": ["m.jsonl"], "json:r.json": ["r.json"],
                               "csv:log.csv": ["log.csv"], "report.txt": ["report.txt"],
                               "lightning:lightning_logs/version_0/metrics.csv":
                                   ["lightning_logs/version_0/metrics.csv"],
                               "json:absent.json": [], "stdout": [], "stderr": []}.items():
            with self.subTest(spec=spec):
                self.assertEqual(paths_to_clear(parse_source(spec), self.root), expected)

    def test_folder_sources_list_nothing(self):
        self.write("out/trainer_state.json", "{}")
        self.write("runs/events.out.tfevents.1.h", b"")
        self.write("wandb/run-20240101_000000-a/files/wandb-summary.json", "{}")
        self.write("lightning_logs/version_0/metrics.csv", "a\n")
        for spec in ("hf:out", "hf:out/trainer_state.json", "tensorboard:runs#x",
                     "tensorboard:runs/events.out.tfevents.1.h", "wandb:wandb", "lightning:lightning_logs"):
            with self.subTest(spec=spec):
                self.assertEqual(paths_to_clear(parse_source(spec), self.root), [])


# ------------------------------------------------------------ the example trainer

@unittest.skipUnless(EXAMPLE.is_dir(), "examples/ is not shipped with an installed plugin")
class ExampleTrainerTest(unittest.TestCase):
    def run_example(self, folder, seed):
        env = {**os.environ, "RATCHET_SEED": str(seed)}
        return subprocess.run([sys.executable, "train.py"], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=60)

    def test_example_writes_val_loss_that_read_metric_reads(self):
        tmp = tempfile.mkdtemp(prefix="ratchet-example-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        folder = os.path.join(tmp, "train_logreg")
        shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("metrics.json*", "__pycache__"))
        source = parse_source("jsonl:metrics.jsonl#val_loss")
        self.assertEqual(paths_to_clear(source, folder), [])
        since = time.time()
        proc = self.run_example(folder, 0)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        reading = read_metric(source, folder, "val_loss", since=since, direction="min")
        self.assertEqual(reading.status, "ok", reading.detail)
        with open(os.path.join(folder, "metrics.json")) as f:
            final = json.load(f)
        self.assertEqual(reading.value, final["val_loss"])
        self.assertIn(f"val_loss: {final['val_loss']:.6f}", proc.stdout)
        with open(os.path.join(folder, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f]
        self.assertEqual([r["epoch"] for r in records], list(range(1, len(records) + 1)))
        self.assertEqual(set(records[-1]), {"epoch", "train_loss", "val_loss", "val_acc"})
        self.assertTrue(0.0 < reading.value < 1.0)
        self.assertEqual(paths_to_clear(source, folder), ["metrics.jsonl"])
        # A later trial that writes nothing must not see this run's file as its own.
        later = read_metric(source, folder, "val_loss", since=time.time() + 1, direction="min")
        self.assertEqual(later.status, "stale")
        # Deterministic given the seed.
        again = self.run_example(folder, 0)
        self.assertEqual(again.stdout, proc.stdout)


if __name__ == "__main__":
    unittest.main()
