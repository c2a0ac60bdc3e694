#!/usr/bin/env python3
"""Freshness of Tidings with vectors, by ../shared/peers/fresh.py's method, for the peers table.

A real `tidings serve` on loopback (embedder FRESH_EMBEDDER, default `local`, the product's
default: the sentence model, with interim vectors for what it cannot take at once; no chat
model) first takes the posts_{base-n} corpus over HTTP and gives all of it a vector (interim
ones at once; the model keeps upgrading them in the background while the clock runs, as it
would in a server that has just taken a large backlog). Then a writer adds posts
at a steady --rate (default 500 posts/s) for --seconds (default 30), each carrying a unique
token zzf<seq>, as NDJSON pushes every 10 ms over several keep-alive connections: a push is
answered after its commit, so each connection sends whatever arrived while it waited as one
push, as a batching client would. Tidings makes posts
visible by its own commit interval (200 ms, the default).

Two lags per post, both from its scheduled arrival time (CLOCK_MONOTONIC, one clock):
- BM25: a reader thread polls POST /v1/search (mode text) every --poll-ms with one query ORing
  the next (up to 80: the API takes a query of 1,000 characters) tokens not yet seen; a post counts as searchable at the
  moment the query that first returned it completed (as fresh.py does).
- vector: a second thread polls GET /metrics every --poll-ms for `index_vectors_upserted`;
  vectors are written in commit order, so when the counter passes base + k, posts 0..k have
  their vectors (searchable by meaning from then on; a post's first vector, interim or the
  model's, counts).
Results land as fresh-tidings-<ms>ms (BM25) and fresh-tidings_vectors-<ms>ms (vectors) in the
peers results folder, read by report.py's freshness table.
"""
import argparse
import http.client
import json
import os
import queue
import re
import subprocess
import threading
import time

import numpy as np

import common as C

BIN = os.environ.get("TIDINGS_BIN", "tidings")
# The harness runs each step from ../shared/peers: the sentence model (which the static table
# is distilled from) is the repository's.
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WINDOW = 80  # tokens per reader poll: 80 × 11 characters fit the API's 1,000-character query


def tok(seq):
    return f"zzf{seq:07d}"


def connect(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=300)


def post_json(conn, path, body, ctype="application/json"):
    conn.request("POST", path, body=body, headers={"content-type": ctype})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"{path}: HTTP {r.status}: {data[:300]!r}")
    return json.loads(data)


def upserted(conn):
    conn.request("GET", "/metrics")
    body = conn.getresponse().read().decode()
    m = re.search(r"^\S*index_vectors_upserted\S*\s+(\d+)", body, re.M)
    if not m:
        raise RuntimeError("no index_vectors_upserted in /metrics")
    return int(m.group(1))


def wait_ready(port, proc):
    for _ in range(1200):
        if proc.poll() is not None:
            raise RuntimeError(f"tidings serve exited with {proc.returncode}")
        try:
            c = connect(port)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("tidings serve was not ready in 120 s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-n", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--poll-ms", type=float, default=10)
    ap.add_argument("--pushers", type=int, default=40)
    a = ap.parse_args()
    embedder = os.environ.get("FRESH_EMBEDDER", "local")
    commit_ms = 200

    ids, texts, ts, meta = C.load_corpus(a.base_n)
    path = C.fresh_dir("fresh_tidings")
    port = 19000 + os.getpid() % 1000
    env = dict(os.environ, TIDINGS__EMBEDDER__KIND=embedder, TIDINGS__MODEL__KIND="none",
               TIDINGS__DATA__DIR=path, TIDINGS__INDEX__COMMIT_INTERVAL_MS=str(commit_ms),
               TIDINGS__EMBEDDER__MODEL_DIR=os.path.join(REPO, "models", "all-minilm-l6-v2"),
               RUST_LOG=os.environ.get("FRESH_RUST_LOG", "warn"))
    srv = subprocess.Popen([BIN, "serve", "--no-sources", "--bind", f"127.0.0.1:{port}"], env=env)
    try:
        wait_ready(port, srv)
        conn = connect(port)
        t_setup = time.perf_counter()
        for start in range(0, len(ids), 10_000):
            lines = [json.dumps({"id": ids[i], "text": texts[i], "created_at": int(ts[i]), "source": "peers"})
                     for i in range(start, min(len(ids), start + 10_000))]
            body = post_json(conn, "/v1/posts", "\n".join(lines).encode(), "application/x-ndjson")
            assert body["rejected"] == 0, body
        print(f"base corpus pushed in {time.perf_counter() - t_setup:.1f}s", flush=True)
        # The base corpus is embedded before the clock starts (the peers' setup is not timed).
        base = None
        for _ in range(36_000):
            base = upserted(conn)
            if base >= len(ids):
                break
            time.sleep(0.1)
        t_setup = time.perf_counter() - t_setup
        if base < len(ids):
            raise RuntimeError(f"only {base} of {len(ids)} base vectors after an hour")

        print(f"base corpus embedded ({embedder}) after {t_setup:.1f}s", flush=True)
        total = int(a.rate * a.seconds)
        seen = np.full(total, np.nan)
        vec_seen = np.full(total, np.nan)
        done = threading.Event()
        polls, vpolls = [], []

        def bm25_reader():
            c = connect(port)
            nxt = 0
            while nxt < total and not done.is_set():
                seqs = [x for x in range(nxt, min(total, nxt + WINDOW)) if np.isnan(seen[x])]
                t0 = time.monotonic()
                body = post_json(c, "/v1/search", json.dumps({
                    "q": " ".join(tok(s) for s in seqs), "mode": "text", "limit": WINDOW,
                    "half_life": "off", "collapse": False}).encode())
                t1 = time.monotonic()
                polls.append(t1 - t0)
                for h in body["hits"]:
                    if h["id"].startswith("f"):
                        s = int(h["id"][1:])
                        if 0 <= s < total and np.isnan(seen[s]):
                            seen[s] = t1
                while nxt < total and not np.isnan(seen[nxt]):
                    nxt += 1
                time.sleep(a.poll_ms / 1000)

        def vector_reader():
            c = connect(port)
            have = 0
            while have < total and not done.is_set():
                t0 = time.monotonic()
                n = min(total, upserted(c) - base)
                t1 = time.monotonic()
                vpolls.append(t1 - t0)
                if n > have:
                    vec_seen[have:n] = t1
                    have = n
                time.sleep(a.poll_ms / 1000)

        work = queue.Queue()
        pushed_at = np.full(total, np.nan)
        push_errors = []

        def pusher():
            c = connect(port)
            while True:
                item = work.get()
                if item is None:
                    return
                # Whatever else is waiting goes in the same push, as a batching client would.
                items, stop = [item], False
                while True:
                    try:
                        more = work.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    items.append(more)
                now = time.monotonic()
                for lo, hi, _ in items:
                    pushed_at[lo:hi] = now
                try:
                    body = post_json(c, "/v1/posts", b"\n".join(b for _, _, b in items),
                                     "application/x-ndjson")
                    if body["rejected"]:
                        push_errors.append(body)
                except Exception as e:  # recorded and reported, the run goes on
                    push_errors.append(str(e))
                if stop:
                    return

        readers = [threading.Thread(target=bm25_reader), threading.Thread(target=vector_reader)]
        pushers = [threading.Thread(target=pusher) for _ in range(a.pushers)]
        for t in readers + pushers:
            t.start()
        t0 = time.monotonic() + 0.2
        arrival = t0 + np.arange(total) / a.rate
        sent_at = np.zeros(total)
        base_ts = meta["window_end_ts"]
        seq = 0
        while seq < total:
            now = time.monotonic()
            lines, first = [], seq
            while seq < total and arrival[seq] <= now:
                j = seq % len(ids)
                lines.append(json.dumps({"id": f"f{seq:07d}", "text": f"{texts[j]} {tok(seq)}",
                                         "created_at": base_ts + int(seq / a.rate), "source": "peers"}))
                sent_at[seq] = time.monotonic()
                seq += 1
            if lines:
                work.put((first, seq, "\n".join(lines).encode()))
            d = min(arrival[seq] if seq < total else now, now + 0.01) - time.monotonic()
            if d > 0:
                time.sleep(d)
        t_end = time.monotonic()
        for _ in pushers:
            work.put(None)
        for t in pushers:
            t.join()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (np.isnan(seen).any() or np.isnan(vec_seen).any()):
            time.sleep(0.1)
        done.set()
        for t in readers:
            t.join()

        version = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip()
        late = (sent_at - arrival) * 1000
        queued = (pushed_at - arrival)[~np.isnan(pushed_at)] * 1000
        for name, engine, got, poll in [
            (f"fresh-tidings-{commit_ms}ms", "tidings (BM25)", seen, polls),
            (f"fresh-tidings_vectors-{commit_ms}ms", f"tidings vectors ({embedder})", vec_seen, vpolls),
        ]:
            lag = (got - arrival)[~np.isnan(got)] * 1000
            C.write_result(name, a.base_n, {
                "versions": {"tidings": version},
                "engine": engine,
                "base_docs": len(ids),
                "setup_s": round(t_setup, 1),
                "rate_target": a.rate,
                "rate_achieved": round(total / (t_end - t0), 1),
                "posts": total,
                "posts_seen": int(np.count_nonzero(~np.isnan(got))),
                "commit_ms": commit_ms,
                "poll_ms": a.poll_ms,
                "lag_ms_p50": round(C.pct(lag, 50), 1) if len(lag) else None,
                "lag_ms_p99": round(C.pct(lag, 99), 1) if len(lag) else None,
                "lag_ms_max": round(float(lag.max()), 1) if len(lag) else None,
                "writer_late_ms_p99": round(C.pct(late, 99), 1),
                # How long a post waited in this client for a free connection before its push.
                "client_queue_ms_p99": round(C.pct(queued, 99), 1),
                # Commits are the server's own (every 200 ms); their durations are not visible
                # to a client, so the report's commit column is left empty.
                "commit_count": None,
                "commit_ms_p50": None,
                "commit_ms_p99": None,
                "reader": {"polls": len(poll), "poll_ms_p50": round(1000 * float(np.median(poll)), 2),
                           "poll_ms_p99": round(1000 * float(np.percentile(poll, 99)), 2)},
                "writer_extra": {"embedder": embedder, "pushers": a.pushers,
                                 "push_errors": len(push_errors),
                                 "lag_measures": "BM25: first search returning it"
                                 if "BM25" in engine else "vector written (index_vectors_upserted, commit order)"},
            })
        if push_errors:
            raise RuntimeError(f"{len(push_errors)} pushes failed; first: {push_errors[0]}")
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=60)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


if __name__ == "__main__":
    main()
