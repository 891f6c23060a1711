#!/usr/bin/env python3
"""The hot path against the bare frameworks, side by side in one run.

Servers (release builds): wa-gateway (`serve --demo`, logging at info so the
audit trail is written), a bare axum answering a BackfillJob-shaped static
JSON of the same size at the same path, and a bare tonic answering an empty
unary call. Load: wrk -t1 -c64 for REST, h2load -c64 -m1 for gRPC, each run
DURATION seconds; runs alternate between the servers and each figure is the
median of ROUNDS. Prints a Markdown table of rates, p99s and ratios, then
one of each server's CPU per call (user + system from /proc, over the same
runs): on a shared machine the rates swing with the other tenants, and the
CPU a call costs much less.

Every server gets the same requests, bearer token included (the baselines
ignore it): the token's bytes cost the load tool and the framework alike, and
h2load never HPACK-indexes `authorization`, so each gRPC call carries it as a
Huffman-coded literal. The baselines are also run without the token, and the
last column gives the ratio against that lighter load.

ListSessions is measured three ways: the same first page polled (the REST
layer serves its kept page once the service answers not_modified), the same
page polled with its etag in If-None-Match (304, no body), and a different
page every call (wrk cycling through 40 pages, more than the REST layer
keeps, so every call reads and renders its page).

p99 under a closed loop at saturation is mostly queueing: 64 connections
wait 64 / rate on average. So latency is also measured below saturation,
each of the 64 connections pausing a few ms after every answer (wrk's
`delay`), wa-gateway against bare axum under the same pauses. (h2load
--rps was tried: its per-request times at 6,400 req/s were 2.7 ms at the
median against bare axum, so they measure the tool.)

    bench/hot_path.py [--duration 10] [--rounds 3] [--pauses 2,4]

Needs wrk and h2load (Debian: wrk, nghttp2-client; installed when missing).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
SESSION = "demo-acme-01"


def ensure_tools():
    missing = [p for p, tool in (("wrk", "wrk"), ("nghttp2-client", "h2load")) if not shutil.which(tool)]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + missing, check=True)


def build():
    subprocess.run(
        ["cargo", "build", "--release", "--bin", "wa-gateway", "--example", "bare_axum", "--example", "bare_tonic"],
        cwd=ROOT, check=True, stderr=subprocess.DEVNULL,
    )


def spawn(args, log):
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)


def read_until(proc, pattern):
    while True:
        line = proc.stdout.readline()
        if not line:
            sys.exit(f"{proc.args[0]} exited early")
        match = re.search(pattern, line)
        if match:
            return match


def http(method, url, token=None, body=None):
    request = urllib.request.Request(url, method=method, data=body)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def wrk(url, token, duration, extra=(), headers=()):
    args = ["wrk", "-t1", "-c64", f"-d{duration}s", "--latency", *extra, url]
    for header in ([f"Authorization: Bearer {token}"] if token else []) + list(headers):
        args[1:1] = ["-H", header]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        sys.exit(f"wrk saw {non2xx.group(1)} failed responses from {url}")
    calls = int(re.search(r"(\d+) requests in", out).group(1))
    return rate, float(p99.group(1)) * scale, calls


def wrk_cycling(url_base, paths, token, duration, work):
    """wrk -t1 -c64 asking for `paths` in turn (one request string each, built once)."""
    script = os.path.join(work, "cycle.lua")
    with open(script, "w") as out:
        out.write("local paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
                  "local requests, i = {}, 0\n"
                  "request = function()\n"
                  "  i = i % #paths + 1\n"
                  "  requests[i] = requests[i] or wrk.format(nil, paths[i])\n"
                  "  return requests[i]\n"
                  "end\n")
    return wrk(url_base + paths[0], token, duration, ["-s", script])


def paced(url, token, pause_ms, duration, work):
    """wrk -t1 -c64, each connection pausing `pause_ms` after every answer."""
    script = os.path.join(work, f"pause{pause_ms}.lua")
    with open(script, "w") as out:
        out.write(f"delay = function() return {pause_ms} end\n")
    return wrk(url, token, duration, ["-s", script])


def h2load(url, data_file, token, duration):
    args = ["h2load", "-c64", "-m1", "-D", str(duration), "-d", data_file,
            "-H", "content-type: application/grpc", "-H", "te: trailers", url]
    if token:
        args[1:1] = ["-H", f"authorization: Bearer {token}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    counts = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", out)
    if int(counts.group(2)):
        sys.exit(f"h2load saw {counts.group(2)} failed requests to {url}")
    return rate, 0.0, int(counts.group(1))


def cpu_seconds(pid):
    """User + system CPU the process has used (fields 14 and 15 of /proc/PID/stat)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def on(server, load):
    """Runs `load` against `server`: rate, p99, and the server's CPU per call in µs.

    CPU per call moves much less with the other tenants of a shared machine
    than the rate does, so it is the steadier of the two ratios."""
    before = cpu_seconds(server.pid)
    rate, p99, calls = load()
    return rate, p99, (cpu_seconds(server.pid) - before) / calls * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pauses", default="2,4",
                        help="ms each connection pauses between calls, for the latency table")
    opts = parser.parse_args()
    ensure_tools()
    build()
    work = tempfile.mkdtemp(prefix="wa-gateway-hotpath-")
    log = open(os.path.join(work, "server.log"), "w")
    procs = []
    try:
        gw = spawn([os.path.join(RELEASE, "wa-gateway"), "--log-format", "json", "serve", "--demo",
                    "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"], log)
        procs.append(gw)
        listening = read_until(gw, r"grpc=(\S+) http=(\S+)")
        grpc, rest = listening.group(1), listening.group(2)
        database = read_until(gw, r"Throwaway database: (\S+)").group(1)
        token = read_until(gw, r"export WA_GATEWAY_TOKEN='([^']+)'").group(1)
        threading_drain(gw)
        http("POST", f"http://{rest}/api/v1/admin/sessions/{SESSION}:backfill", token, b"")
        job = b""
        for _ in range(600):
            job = http("GET", f"http://{rest}/api/v1/admin/sessions/{SESSION}/backfill", token)
            if json.loads(job)["status"] == "succeeded":
                break
            time.sleep(0.1)
        # The demo seeds 12 sessions; 40 distinct pages of 50 need more.
        import_sessions(database, work, count=50 * 41)
        first_page = "/api/v1/admin/sessions?limit=50"
        pages, path = [], first_page
        while len(pages) < 40:
            pages.append(path)
            page = json.loads(http("GET", f"http://{rest}{path}", token))
            if len(page["data"]) != 50:
                sys.exit(f"a ListSessions page holds {len(page['data'])} sessions, not 50")
            path = f"{first_page}&cursor={urllib.parse.quote(page['nextCursor'])}"
        etag = http_etag(f"http://{rest}{first_page}", token)
        body_file = os.path.join(work, "job.json")
        open(body_file, "wb").write(job)
        axum = spawn([os.path.join(RELEASE, "examples", "bare_axum"), body_file], log)
        tonic = spawn([os.path.join(RELEASE, "examples", "bare_tonic")], log)
        procs += [axum, tonic]
        axum_addr = read_until(axum, r"listening: (\S+)").group(1)
        tonic_addr = read_until(tonic, r"listening: (\S+)").group(1)
        get_backfill = os.path.join(work, "get_backfill.bin")
        open(get_backfill, "wb").write(grpc_frame(b"\x0a" + bytes([len(SESSION)]) + SESSION.encode()))
        health = os.path.join(work, "health.bin")
        open(health, "wb").write(grpc_frame(b""))

        rss_before = rss_mib(gw.pid)
        backfill_path = f"/api/v1/admin/sessions/{SESSION}/backfill"
        loads = {
            "rest": (gw, lambda: wrk(f"http://{rest}{backfill_path}", token, opts.duration)),
            "axum": (axum, lambda: wrk(f"http://{axum_addr}{backfill_path}", token, opts.duration)),
            "axum_bare": (axum, lambda: wrk(f"http://{axum_addr}{backfill_path}", None, opts.duration)),
            "grpc": (gw, lambda: h2load(f"http://{grpc}/wa.gateway.admin.v1.AdminService/GetBackfill",
                                        get_backfill, token, opts.duration)),
            "tonic": (tonic, lambda: h2load(f"http://{tonic_addr}/grpc.health.v1.Health/Check", health, token,
                                            opts.duration)),
            "tonic_bare": (tonic, lambda: h2load(f"http://{tonic_addr}/grpc.health.v1.Health/Check", health, None,
                                                 opts.duration)),
            "list": (gw, lambda: wrk(f"http://{rest}{first_page}", token, opts.duration)),
            "list_304": (gw, lambda: wrk(f"http://{rest}{first_page}", token, opts.duration,
                                         headers=[f"If-None-Match: {etag}"])),
            "list_cold": (gw, lambda: wrk_cycling(f"http://{rest}", pages, token, opts.duration, work)),
        }
        pauses = [int(p) for p in opts.pauses.split(",") if p]
        for pause in pauses:
            loads[f"rest@{pause}"] = (gw, lambda p=pause: paced(f"http://{rest}{backfill_path}", token, p,
                                                                opts.duration, work))
            loads[f"axum@{pause}"] = (axum, lambda p=pause: paced(f"http://{axum_addr}{backfill_path}", token, p,
                                                                  opts.duration, work))
        runs = {name: [] for name in loads}
        for _ in range(opts.rounds):
            for name, (server, load) in loads.items():
                runs[name].append(on(server, load))
        med = {k: tuple(statistics.median(run[i] for run in v) for i in range(3)) for k, v in runs.items()}
        rss_after = rss_mib(gw.pid)
        metrics = http("GET", f"http://{rest}/metrics").decode()
        dropped = sum(float(l.rsplit(" ", 1)[1]) for l in metrics.splitlines()
                      if l.startswith("wa_gateway_log_lines_dropped_total"))
        audit = sum(1 for line in open(os.path.join(work, "server.log")) if '"target":"audit"' in line)

        print(f"{opts.rounds} rounds of {opts.duration} s, medians; JSON body {len(job)} bytes")
        print("| call | load | wa-gateway | p99 | bare baseline, same requests | ratio | baseline without token | ratio |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| REST GET …/backfill (finished job) | wrk -t1 -c64 | {med['rest'][0]:,.0f} req/s | "
              f"{med['rest'][1]:.2f} ms | axum static JSON: {med['axum'][0]:,.0f} req/s, p99 {med['axum'][1]:.2f} ms | "
              f"{med['rest'][0] / med['axum'][0]:.2f} | {med['axum_bare'][0]:,.0f} req/s, "
              f"p99 {med['axum_bare'][1]:.2f} ms | {med['rest'][0] / med['axum_bare'][0]:.2f} |")
        print(f"| gRPC GetBackfill | h2load -c64 -m1 | {med['grpc'][0]:,.0f} req/s | | "
              f"tonic empty unary: {med['tonic'][0]:,.0f} req/s | {med['grpc'][0] / med['tonic'][0]:.2f} | "
              f"{med['tonic_bare'][0]:,.0f} req/s | {med['grpc'][0] / med['tonic_bare'][0]:.2f} |")
        print(f"| REST ListSessions, page of 50 | wrk -t1 -c64 | {med['list'][0]:,.0f} req/s | "
              f"{med['list'][1]:.2f} ms | REST GET …/backfill: {med['rest'][0]:,.0f} req/s | "
              f"{med['list'][0] / med['rest'][0]:.2f} | | |")
        print(f"| … the same page, If-None-Match (304) | wrk -t1 -c64 | {med['list_304'][0]:,.0f} req/s | "
              f"{med['list_304'][1]:.2f} ms | REST GET …/backfill | {med['list_304'][0] / med['rest'][0]:.2f} | | |")
        print(f"| … a different page each call (40 pages) | wrk -t1 -c64 -s cycle.lua | "
              f"{med['list_cold'][0]:,.0f} req/s | {med['list_cold'][1]:.2f} ms | REST GET …/backfill | "
              f"{med['list_cold'][0] / med['rest'][0]:.2f} | | |")
        print()
        print("REST GET …/backfill below saturation (wrk -t1 -c64, each connection pausing after every answer):")
        print("| pause | wa-gateway | p99 | bare axum | p99 |")
        print("|---|---|---|---|---|")
        for pause in pauses:
            ours, theirs = med[f"rest@{pause}"], med[f"axum@{pause}"]
            print(f"| {pause} ms | {ours[0]:,.0f} req/s | {ours[1]:.2f} ms | {theirs[0]:,.0f} req/s | "
                  f"{theirs[1]:.2f} ms |")
        print()
        print("Server CPU per call (user + system, from /proc; medians), the steadier comparison on a shared machine:")
        print("| call | wa-gateway | baseline | ratio (baseline / wa-gateway) |")
        print("|---|---|---|---|")
        for label, ours, theirs, what in (
            ("REST GET …/backfill", "rest", "axum", "axum static JSON"),
            ("gRPC GetBackfill", "grpc", "tonic", "tonic empty unary"),
            ("REST ListSessions, page of 50", "list", "rest", "REST GET …/backfill"),
            ("… If-None-Match (304)", "list_304", "rest", "REST GET …/backfill"),
            ("… a different page each call", "list_cold", "rest", "REST GET …/backfill"),
        ):
            print(f"| {label} | {med[ours][2]:.1f} µs | {what}: {med[theirs][2]:.1f} µs | "
                  f"{med[theirs][2] / med[ours][2]:.2f} |")
        print(f"audit events written: {audit}; log lines dropped: {dropped:.0f}; "
              f"wa-gateway RSS {rss_before:.1f} -> {rss_after:.1f} MiB over the runs (never scraped meanwhile)")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def import_sessions(database, work, count=200):
    lines = os.path.join(work, "sessions.jsonl")
    with open(lines, "w") as out:
        for i in range(count):
            out.write(json.dumps({
                "id": f"bench-{i:04}", "organizationId": f"org_bench_{i % 7}", "createdByUserId": "user_bench",
                "gatewayId": f"gw-bench-{i % 3}", "label": f"Bench line {i}", "phoneNumber": f"62899{i:07}",
                "waJid": f"62899{i:07}@s.whatsapp.net", "waLid": None, "status": "working", "autoRead": False,
                "presenceTyping": True, "isAdminSession": False, "ratePerMin": 20, "ratePerHour": 600,
                "createdAt": 1719662400000 + i, "updatedAt": 1719662400000 + i, "lastConnectedAt": None,
            }) + "\n")
    subprocess.run([os.path.join(RELEASE, "wa-gateway"), "--database-url", database, "sessions", "import", lines],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def http_etag(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["ETag"]


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def threading_drain(proc):
    import threading
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()


if __name__ == "__main__":
    main()
