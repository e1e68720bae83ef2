"""bench/bench_dataplane.py's reading of iperf3's JSON report (pure): the receiver's figure of a
TCP test, iperf3's own error message, and reports that have no figure to give."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "bench_dataplane.py"
_spec = importlib.util.spec_from_file_location("bench_dataplane", _PATH)
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

# `iperf3 -c 127.0.0.1 -t 1 -J` (iperf 3.12, in a namespace of its own), trimmed to what the
# reader looks at: the sender's and the receiver's sums differ, and the receiver's is the figure.
TCP_REPORT = {
    "start": {"version": "iperf 3.12"},
    "intervals": [],
    "end": {
        "sum_sent": {"start": 0, "end": 1.00252, "seconds": 1.00252, "bytes": 1069547520,
                     "bits_per_second": 8534872281.849738, "retransmits": 0, "sender": True},
        "sum_received": {"start": 0, "end": 1.003006, "seconds": 1.003006, "bytes": 1065746432,
                         "bits_per_second": 8500419195.897133, "sender": True},
    },
}

# The same client with no server listening (iperf 3.12): iperf3's tab-indented JSON, its message.
REFUSED = ('{\n\t"start":\t{\n\t\t"connected":\t[],\n\t\t"version":\t"iperf 3.12"\n\t},\n\t"intervals":\t[],\n'
           '\t"end":\t{\n\t},\n\t"error":\t"unable to connect to server: Connection refused"\n}\n')


def test_the_receivers_figure_of_a_tcp_test():
    assert bench.received_bps(json.dumps(TCP_REPORT)) == 8500419195.897133


def test_iperf3s_error_is_raised_with_its_own_message():
    with pytest.raises(bench.IperfError, match="^unable to connect to server: Connection refused$"):
        bench.received_bps(REFUSED)


def test_a_refused_connection_is_one_the_benchmark_waits_out():
    with pytest.raises(bench.IperfError) as e:
        bench.received_bps(REFUSED)
    assert any(r in str(e.value) for r in bench.RETRY)


@pytest.mark.parametrize("report", [
    "",                                                             # iperf3 printed nothing
    "iperf3: error - unable to connect",                            # not JSON (run without -J)
    "[]",                                                           # JSON, not a report
    json.dumps({"start": {}, "end": {}}),                           # no sums
    json.dumps({"end": {"sum": {"bits_per_second": 1e6}}}),         # a UDP test's shape
    json.dumps({"end": {"sum_received": {"bits_per_second": None}}}),
])
def test_a_report_without_the_figure_is_an_error_not_a_zero(report):
    with pytest.raises(bench.IperfError):
        bench.received_bps(report)


def test_the_client_runs_one_timed_test_with_a_json_report():
    assert bench.client_argv("10.244.1.2", 3) == ["iperf3", "-c", "10.244.1.2", "-p", "5201", "-t", "3", "-J"]
    assert bench.client_argv("10.99.0.2", 2.5)[-3:] == ["-t", "2.5", "-J"]
