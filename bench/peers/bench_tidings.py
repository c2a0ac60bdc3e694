#!/usr/bin/env python3
"""Tidings as a peer in ../shared/peers: a real `tidings serve` (text only: embedder and chat
model `none`)
on loopback, fed and queried over HTTP the way a client would. Ingest = NDJSON pushes of
10k posts, each acknowledged only after its commit (durable and searchable). Queries = POST
/v1/search with mode=text, the same last-24 h window, no recency decay and no duplicate
collapse, so the top-10 is comparable with the other engines'; the hits carry their ids alone
(`fields: ["id"]`), as the peers return them, and the filtered queries are timed again with
whole hits (`query_filtered_whole_hits`). Latency includes HTTP on loopback and JSON; RSS is
the server's (read from /proc), not this process's."""
import http.client
import json
import os
import subprocess
import tempfile
import time

import common as C

BIN = os.environ.get("TIDINGS_BIN", "tidings")


def server_rss_mb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    a = C.base_args(__doc__).parse_args()
    ids, texts, ts, meta = C.load_corpus(a.n)
    queries = C.load_queries()
    path = C.fresh_dir(f"tidings_{a.n}")
    port = 18000 + os.getpid() % 1000
    env = dict(os.environ, TIDINGS__EMBEDDER__KIND="none", TIDINGS__MODEL__KIND="none", TIDINGS__DATA__DIR=path,
               TIDINGS__INDEX__COMMIT_INTERVAL_MS="250", RUST_LOG="warn")
    srv = subprocess.Popen([BIN, "serve", "--bind", f"127.0.0.1:{port}"], env=env)
    try:
        conn = None
        for _ in range(600):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.request("GET", "/readyz")
                if conn.getresponse().read() and True:
                    break
            except OSError:
                time.sleep(0.1)
        t0 = time.perf_counter()
        batch = 10_000
        for start in range(0, a.n, batch):
            lines = []
            for i in range(start, min(a.n, start + batch)):
                lines.append(json.dumps({"id": ids[i], "text": texts[i], "created_at": int(ts[i]), "source": "peers"}))
            conn.request("POST", "/v1/posts", body="\n".join(lines).encode(), headers={"content-type": "application/x-ndjson"})
            r = conn.getresponse()
            body = json.loads(r.read())
            assert r.status == 200 and body["rejected"] == 0, body
        ingest_s = time.perf_counter() - t0
        lo, hi = meta["filter_lo_ts"], meta["window_end_ts"]

        def run(q, filtered, whole=False):
            # The ids, as every peer returns them (`fields`); `whole` asks for whole hits (text,
            # dates, score breakdown: ~4 kB instead of ~0.5 kB), reported beside.
            req = {"q": q, "mode": "text", "limit": 10, "half_life": "off", "collapse": False}
            if not whole:
                req["fields"] = ["id"]
            if filtered:
                req.update({"from": str(lo), "to": str(hi - 1), "as_of": str(hi - 1)})
            conn.request("POST", "/v1/search", body=json.dumps(req).encode(), headers={"content-type": "application/json"})
            r = conn.getresponse()
            body = json.loads(r.read())
            assert r.status == 200, body
            return [h["id"] for h in body["hits"]]

        check = C.make_ts_check(lambda pid: int(ts[C.id_to_index(pid)]), lo, hi)
        filt, top = C.time_queries(lambda q: run(q, True), queries, a.reps, a.query_budget_s, check)
        nofilt, _ = C.time_queries(lambda q: run(q, False), queries, 1, a.query_budget_s)
        whole, _ = C.time_queries(lambda q: run(q, True, True), queries, a.reps, a.query_budget_s, check)
        rss = server_rss_mb(srv.pid, "VmRSS:")
        peak = server_rss_mb(srv.pid, "VmHWM:")
        C.write_result("tidings", a.n, {
            "versions": {"tidings": subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip()},
            "ingest_s": round(ingest_s, 2),
            "ingest_posts_per_s": round(a.n / ingest_s),
            "index_mb": round(C.dir_mb(path), 1),
            "query_filtered": filt,
            "query_unfiltered": nofilt,
            "query_filtered_whole_hits": whole,
            "time_filter": "native: tantivy RangeQuery on the created_at fast field, inside the server",
            "rss_after_load_mb": round(rss, 1),
            "server_peak_rss_mb": round(peak, 1),
            "conditions": "tidings serve over HTTP on loopback (keep-alive), embedder none; NDJSON pushes of 10k, "
                          "each answered after its commit; social analyzer + English stemming; validation + dedup; "
                          "RSS figures are the server's",
        }, top)
    finally:
        srv.terminate()
        srv.wait(timeout=60)


if __name__ == "__main__":
    main()
