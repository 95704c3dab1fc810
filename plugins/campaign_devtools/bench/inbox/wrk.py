"""The load generator: wrk (its own process, C and LuaJIT) driven by a Lua script, and its output read back.

The script (kept here as text so an installed package carries it) plays a random customer from
the token file per request: 90% GET feed, 10% POST of one engagement event with an id unique to
the run. Its `response` hook counts statuses per thread and `done` prints one `BENCH` line
(requests, duration, p50/p95/p99/max, socket errors, non-2xx) and one `BENCH_STATUS` line; the
parser insists on those and on wrk's own summary agreeing with them, so a change in wrk's output
fails `test_bench_inbox`, never the bench's figures silently.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = r"""
-- bench-inbox: a random customer per request; GET its feed, or POST one engagement event.
local count, seq, write_share, nonce = 0, 0, 0.1, "run"
local ids, msgs, auths = {}, {}, {}
local kinds = {"displayed", "displayed", "read", "read", "clicked"}
local threads = {}
thread_no = 0
sent_get, sent_post, ok_2xx, not_2xx = 0, 0, 0, 0
statuses = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

function init(args)
  local path = args[1]
  write_share, nonce = tonumber(args[2]), args[3]
  for line in io.lines(path) do
    local c, m, t = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)$")
    if c then
      count = count + 1
      ids[count] = c
      local list = {}
      for id in m:gmatch("[^,]+") do list[#list + 1] = id end
      msgs[count] = list
      auths[count] = "Bearer " .. t
    end
  end
  if count == 0 then error("no customers in " .. path) end
  math.randomseed(os.time() + 7919 * thread_no)
end

function request()
  local i = math.random(count)
  if math.random() < write_share then
    seq = seq + 1
    sent_post = sent_post + 1
    local list = msgs[i]
    local body = string.format('{"events":[{"id":"%s-%d-%d","message_id":"%s","type":"%s"}]}',
      nonce, thread_no, seq, list[math.random(#list)], kinds[math.random(#kinds)])
    return wrk.format("POST", "/v1/customers/" .. ids[i] .. "/events",
      {["Authorization"] = auths[i], ["Content-Type"] = "application/json"}, body)
  end
  sent_get = sent_get + 1
  return wrk.format("GET", "/v1/customers/" .. ids[i] .. "/feed", {["Authorization"] = auths[i]})
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok_2xx = ok_2xx + 1 else not_2xx = not_2xx + 1 end
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local gets, posts, ok, bad, codes = 0, 0, 0, 0, {}
  for _, t in ipairs(threads) do
    gets, posts = gets + t:get("sent_get"), posts + t:get("sent_post")
    ok, bad = ok + t:get("ok_2xx"), bad + t:get("not_2xx")
    for code, n in pairs(t:get("statuses")) do codes[code] = (codes[code] or 0) + n end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p95_us=%d p99_us=%d max_us=%d mean_us=%.1f " ..
    "ok_2xx=%d non_2xx=%d connect=%d read=%d write=%d timeout=%d sent_get=%d sent_post=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean, ok, bad,
    e.connect, e.read, e.write, e.timeout, gets, posts))
  local parts = {}
  for code, n in pairs(codes) do parts[#parts + 1] = string.format("%d=%d", code, n) end
  table.sort(parts)
  io.write("BENCH_STATUS " .. table.concat(parts, " ") .. "\n")
end
"""

_SUMMARY = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h), \S+ read\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_BENCH = re.compile(r"^BENCH (.+)$", re.M)
_STATUS = re.compile(r"^BENCH_STATUS ?(.*)$", re.M)
_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
SOCKET_KINDS = ("connect", "read", "write", "timeout")


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed something this parser does not recognise."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    non_2xx: int
    socket_errors: dict[str, int]
    statuses: dict[int, int] = field(default_factory=dict)
    sent_get: int = 0
    sent_post: int = 0

    @property
    def errors(self) -> int:
        """Responses that were not 2xx plus requests that got no response at all."""
        return self.non_2xx + sum(self.socket_errors.values())


def _pairs(text: str) -> dict[str, float]:
    out = {}
    for part in text.split():
        key, sep, value = part.partition("=")
        if not sep:
            raise WrkError(f"wrk output: cannot read {part!r} in the BENCH line")
        out[key] = float(value)
    return out


def parse(output: str) -> WrkResult:
    """Read wrk's stdout (its summary plus the script's BENCH lines); WrkError if anything is off."""
    summary, rps, bench, status = _SUMMARY.search(output), _RPS.search(output), _BENCH.search(output), None
    status = _STATUS.search(output)
    if not (summary and rps and bench and status):
        raise WrkError("wrk output lacks its summary, Requests/sec or the script's BENCH lines:\n" + output[-2000:])
    b = _pairs(bench.group(1))
    missing = {"requests", "duration_us", "p50_us", "p95_us", "p99_us", "max_us", "non_2xx", *SOCKET_KINDS} - set(b)
    if missing:
        raise WrkError(f"wrk output: the BENCH line lacks {sorted(missing)}")
    requests, duration_s = int(b["requests"]), b["duration_us"] / 1e6
    unit = _UNIT_S[summary.group(3)]  # wrk prints 2 decimals of its unit: 60.4 s is "1.01m"
    if requests != int(summary.group(1)) or abs(float(summary.group(2)) * unit - duration_s) > 0.006 * unit + 0.01:
        raise WrkError("wrk output: its summary and the BENCH line disagree on requests or duration:\n" + output)
    computed = requests / duration_s if duration_s > 0 else 0.0
    if abs(computed - float(rps.group(1))) > max(1.0, 0.01 * computed):
        raise WrkError(f"wrk output: Requests/sec {rps.group(1)} is not requests / duration ({computed:.2f})")
    socket = {k: int(b[k]) for k in SOCKET_KINDS}
    printed = _SOCKET.search(output)
    if printed and [int(x) for x in printed.groups()] != [socket[k] for k in SOCKET_KINDS]:
        raise WrkError("wrk output: its socket errors and the BENCH line disagree")
    statuses = {int(k): int(v) for k, v in _pairs(status.group(1)).items()}
    if sum(statuses.values()) != requests:
        raise WrkError("wrk output: the status counts do not add up to the requests")
    return WrkResult(
        requests=requests,
        duration_s=round(duration_s, 3),
        requests_per_s=round(computed, 1),
        p50_ms=b["p50_us"] / 1000,
        p95_ms=b["p95_us"] / 1000,
        p99_ms=b["p99_us"] / 1000,
        max_ms=b["max_us"] / 1000,
        mean_ms=round(b.get("mean_us", 0.0) / 1000, 3),
        non_2xx=int(b["non_2xx"]),
        socket_errors=socket,
        statuses=statuses,
        sent_get=int(b.get("sent_get", 0)),
        sent_post=int(b.get("sent_post", 0)),
    )


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise WrkError("wrk is not installed: apt-get install -y wrk (make bench-inbox does it when run as root)")
    return found


@dataclass(frozen=True)
class Load:
    """How wrk loads a server: the same for the floor and the service."""

    token_file: Path
    script: Path
    nonce: str
    threads: int = 2
    connections: int = 32
    write_share: float = 0.10


def run(base_url: str, load: Load, seconds: int, label: str) -> tuple[str, WrkResult]:
    """Run wrk for `seconds` against base_url; (its output, the parsed figures)."""
    command = [
        wrk_binary(),
        f"--threads={load.threads}",
        f"--connections={load.connections}",
        f"--duration={seconds}s",
        "--timeout=10s",
        f"--script={load.script}",
        base_url,
        "--",
        str(load.token_file),
        str(load.write_share),
        f"{load.nonce}-{label}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise WrkError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-1000:] or done.stdout[-1000:]}")
    return done.stdout, parse(done.stdout)
