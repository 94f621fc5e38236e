#!/usr/bin/env python3
"""Helpers of `make bench` (tests/tools/bench.sh): deterministic data sets, the 1% mutation,
bytes stored under a Swift prefix, and the Markdown report.

  bench.py gen SET DIR SCALE          write data set SET (a, b or c) into DIR (must not exist)
  bench.py mutate SET DIR SCALE       apply the deterministic ~1% change to DIR; prints a summary
  bench.py size SET SCALE             bytes the set will take (for the disk-space check)
  bench.py swift-bytes ENV PREFIX     sum of object bytes under PREFIX/ in the test container
  bench.py report TSV META OUT        render the results (TSV) as Markdown into OUT

Everything random comes from random.Random(seed): the same SCALE gives the same bytes on every
machine and Python >= 3.9 (randbytes). All mtimes are fixed: T0 for the pristine tree, T1 for
what the mutation touches, so change detection never depends on the clock.
"""

import itertools
import json
import math
import os
import random
import sys
import urllib.parse
import urllib.request

T0 = 1_700_000_000
T1 = T0 + 86_400
MIB = 1 << 20

# --- text that compresses like logs (~3.3x with deflate -6) -----------------------------------

_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
_LETTER_W = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
_MODULES = ["auth", "db", "http", "cache", "queue", "sched", "store", "api"]
_LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]


class Text:
    """Log-like lines: Zipf-distributed words from a fixed 5,000-word vocabulary."""

    def __init__(self):
        r = random.Random(7)
        self.vocab = ["".join(r.choices(_LETTERS, _LETTER_W, k=r.randint(2, 9))) for _ in range(5000)]
        self.cw = list(itertools.accumulate(1 / (i + 1) ** 1.15 for i in range(5000)))
        self.t = float(T0)

    def make(self, rng, n):
        out, size = [], 0
        while size < n:
            words = rng.choices(self.vocab, cum_weights=self.cw, k=4000)
            pos, lines = 0, []
            while pos < len(words):
                k = rng.randint(5, 14)
                self.t += rng.random() * 0.5
                lines.append("%d.%03d %s [%s] %s id=%d took=%dms\n" % (
                    int(self.t), int(self.t * 1000) % 1000, rng.choice(_LEVELS),
                    rng.choice(_MODULES), " ".join(words[pos:pos + k]),
                    rng.randrange(100000), rng.randrange(5000)))
                pos += k
            s = "".join(lines)
            out.append(s)
            size += len(s)
        return "".join(out).encode()[:n]


def write_big(path, n, chunk_fn):
    with open(path, "wb") as f:
        left = n
        while left > 0:
            b = chunk_fn(min(left, 16 * MIB))
            f.write(b)
            left -= len(b)


# --- the data sets ------------------------------------------------------------------------------

def scaled(x, scale, lo):
    return max(lo, int(round(x * scale)))


def plan(name, scale):
    """The set's parameters at this scale (also used by `size`)."""
    if name == "a":
        return dict(n_text=8, text_size=scaled(48 * MIB, scale, 64 << 10),
                    n_bin=8, bin_size=scaled(64 * MIB, scale, 64 << 10),
                    n_small=scaled(10_000, scale, 100), small_mu=math.log(4096), small_sigma=1.2,
                    small_max=256 << 10, per_leaf=50, bin_share=0.2)
    if name == "b":
        return dict(n_text=0, text_size=0, n_bin=0, bin_size=0,
                    n_small=scaled(100_000, scale, 200), small_mu=math.log(1024), small_sigma=1.0,
                    small_max=64 << 10, per_leaf=100, bin_share=0.1)
    if name == "c":
        return dict(big=scaled(4096 * MIB, scale, MIB))
    raise SystemExit(f"unknown data set {name!r} (a, b or c)")


def estimate(name, scale):
    p = plan(name, scale)
    if name == "c":
        return p["big"]
    mean = math.exp(p["small_mu"] + p["small_sigma"] ** 2 / 2)
    return p["n_text"] * p["text_size"] + p["n_bin"] * p["bin_size"] + int(p["n_small"] * mean)


def small_path(name, i, per_leaf):
    top = "small" if name == "a" else "files"
    leaf = i // per_leaf
    return f"{top}/d{leaf // 10:03d}/e{leaf % 10}/f{i % per_leaf:03d}"


def gen(name, root, scale):
    p = plan(name, scale)
    os.makedirs(root)
    rng = random.Random(f"swiftdup-bench-{name}")
    if name == "c":
        write_big(os.path.join(root, "disk.img"), p["big"], rng.randbytes)
        set_tree_mtime(root, T0)
        return
    text = Text()
    if p["n_text"]:
        os.makedirs(os.path.join(root, "text"))
        for i in range(p["n_text"]):
            write_big(os.path.join(root, f"text/log{i}.txt"), p["text_size"], lambda n: text.make(rng, n))
        os.makedirs(os.path.join(root, "bin"))
        for i in range(p["n_bin"]):
            write_big(os.path.join(root, f"bin/blob{i}.bin"), p["bin_size"], rng.randbytes)
    # Small files take slices of one 8 MiB corpus at random offsets: cheap to make, and no two
    # files share content a chunker could find.
    corpus = text.make(rng, 8 * MIB)
    for i in range(p["n_small"]):
        rel = small_path(name, i, p["per_leaf"])
        size = 0 if rng.random() < 0.01 else min(p["small_max"], int(rng.lognormvariate(p["small_mu"], p["small_sigma"])))
        if rng.random() < p["bin_share"]:
            data, rel = rng.randbytes(size), rel + ".bin"
        else:
            off = rng.randrange(len(corpus) - size)
            data, rel = corpus[off:off + size], rel + ".txt"
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    set_tree_mtime(root, T0)


def set_tree_mtime(root, t):
    for d, dirs, files in os.walk(root, topdown=False):
        for f in files:
            os.utime(os.path.join(d, f), (t, t), follow_symlinks=False)
        os.utime(d, (t, t))


def all_files(root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            out.append(os.path.relpath(os.path.join(d, f), root))
    return out


def overwrite(path, off, data):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def append(path, data):
    with open(path, "ab") as f:
        f.write(data)


def mutate(name, root, scale):
    """~1% of the files: edits inside large files, appends, deletes, new files, small edits."""
    rng = random.Random(f"swiftdup-bench-mutate-{name}")
    text = Text()
    touched, dirs = set(), set()
    counts = dict(edited_large=0, appended=0, deleted=0, new=0, edited_small=0)
    if name == "c":
        path = os.path.join(root, "disk.img")
        size = os.path.getsize(path)
        for frac in (0.1, 0.3, 0.5, 0.7, 0.9):
            overwrite(path, int(size * frac) // 4096 * 4096, rng.randbytes(4096))
        append(path, rng.randbytes(scaled(16 * MIB, scale, 64 << 10)))
        os.utime(path, (T1, T1))
        print("mutation (c): 5 x 4 KiB overwritten inside disk.img, "
              f"{scaled(16 * MIB, scale, 64 << 10)} bytes appended")
        return
    files = all_files(root)
    large = [f for f in files if f.startswith(("text/", "bin/"))]
    small = [f for f in files if f not in set(large)]
    k = max(1, round(0.003 * len(files)))
    # Large files: 4 KiB overwritten in the middle of two text and two binary files, and new
    # log lines appended to one more text file.
    if large:
        texts = [f for f in large if f.startswith("text/")]
        bins = [f for f in large if f.startswith("bin/")]
        for f in rng.sample(texts, 2) + rng.sample(bins, 2):
            p = os.path.join(root, f)
            size = os.path.getsize(p)
            data = text.make(rng, 4096) if f.startswith("text/") else rng.randbytes(4096)
            overwrite(p, size // 2, data)
            overwrite(p, size // 3, data[:1024])
            touched.add(f)
            counts["edited_large"] += 1
        f = rng.choice([t for t in texts if t not in touched])
        append(os.path.join(root, f), text.make(rng, scaled(MIB, scale, 16 << 10)))
        touched.add(f)
        counts["appended"] += 1
    pick = rng.sample(small, min(len(small), 2 * k + k // 3))
    for f in pick[:k]:  # appends
        append(os.path.join(root, f), text.make(rng, rng.randint(100, 4096)))
        touched.add(f)
        counts["appended"] += 1
    for f in pick[k:2 * k]:  # deletes
        os.remove(os.path.join(root, f))
        dirs.add(os.path.dirname(f))
        counts["deleted"] += 1
    for f in pick[2 * k:]:  # same-size edits in the middle (mtime is what changes)
        p = os.path.join(root, f)
        size = os.path.getsize(p)
        if size:
            overwrite(p, size // 2, rng.randbytes(min(1024, size - size // 2)))
        touched.add(f)
        counts["edited_small"] += 1
    # New files: k next to existing ones, k // 3 in a new directory.
    leaves = sorted({os.path.dirname(f) for f in small})
    top = "small" if name == "a" else "files"
    news = [f"{rng.choice(leaves)}/new{i:04d}.txt" for i in range(k)]
    news += [f"{top}/new/n{i:04d}.txt" for i in range(max(1, k // 3))]
    for f in news:
        p = os.path.join(root, f)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(text.make(rng, rng.randint(0, 16384)))
        touched.add(f)
        dirs.add(os.path.dirname(f))
        counts["new"] += 1
    for f in touched:
        os.utime(os.path.join(root, f), (T1, T1))
    for d in dirs:
        os.utime(os.path.join(root, d), (T1, T1))
    n = sum(counts.values())
    print(f"mutation ({name}): {n} of {len(files)} files ({100 * n / len(files):.2f}%): "
          + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))


# --- Swift ---------------------------------------------------------------------------------------

def read_env(path):
    env = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("export "):
            k, _, v = line[7:].partition("=")
            env[k] = v
    return env


def swift_bytes(env_file, prefix):
    """Sum of the object sizes under PREFIX/ (listing pages of 10,000 with the full key)."""
    env = read_env(env_file)
    base = f"{env['SWIFT_STORAGE_URL']}/{env['SWIFTDUP_TEST_CONTAINER']}"
    total, marker = 0, ""
    while True:
        q = urllib.parse.urlencode(dict(format="json", prefix=prefix + "/", marker=marker, limit=10000))
        req = urllib.request.Request(f"{base}?{q}", headers={"X-Container-Meta-Full-Key": env["SWIFTDUP_TEST_FULL_KEY"]})
        with urllib.request.urlopen(req) as r:
            body = r.read()
        page = json.loads(body) if body.strip() else []
        if not page:
            return total
        total += sum(o["bytes"] for o in page)
        marker = page[-1]["name"]


# --- report --------------------------------------------------------------------------------------

METHOD = """\
- One run, one machine, the tools one after another on the same data: all full backups on the
  pristine tree, then all no-change incrementals, then the tree is changed once
  (deterministically, ~1% of the files) and all 1%-change incrementals run on it, then all
  restores of the latest time into fresh directories, each compared with the source
  (`diff -r --no-dereference`); a restore that differs is marked ✗. Before each run, `sync`
  (no tool pays for writing back the previous one's output) and {cache}
- Each run is `/usr/bin/time -f '%e %U %S %M'` (GNU time) around the tool, in a clean
  environment (`env -i`, its own HOME, cache, TMPDIR and GNUPGHOME). **Wall** is %e.
  **CPU** is user+sys of the tool and of every child it waited for (duplicity's gpg
  processes included). **Peak RSS** is %M, the kernel's ru_maxrss for the waited process,
  which Linux takes as the maximum over the process and its waited-for descendants: the
  largest single process, not the sum of processes alive together (duplicity's python runs
  beside a gpg of a few MiB). restic runs with Go's default GOMAXPROCS (all cores), rustic
  with its defaults;
  swiftdup with its default `--concurrency 2` (compression on min(2, cores) threads, sealing,
  uploads and restore decryption on threads of their own); duplicity's python uses one
  core, its gpg runs beside it.
- **Written** is the growth of the tool's target: the sum of its files' sizes for file://,
  the sum of its objects' sizes under its prefix (container listing with the full key) for
  Swift. restic's and rustic's `init` (config and key, ~1 KiB) is done before and not counted.
- Swift: a real single-replica Swift 2.30 on 127.0.0.1 (tests/swift/start.sh), one per data
  set. swiftdup uses `swiftkeys://` with the container's full key; duplicity 0.8.22 its
  `swift://` backend and restic 0.14 its `swift:` backend, both with tempauth v1, and rustic
  0.11.4 OpenDAL's swift service with a tempauth token (none of them can use container
  keys). The Swift servers' CPU is not in the tools' CPU time, but their work
  is in the wall time.
- Each tool keeps its own cache between runs (duplicity's archive dir, swiftdup's
  `--archive-dir`, restic's cache), as on a host that backs up every day; restores run with
  that cache present. Symmetric encryption everywhere (restic always encrypts), default
  volume sizes and compression of each tool.
- Data (tests/tools/bench.py, seeded): text-like files are log lines from a 5,000-word
  Zipf vocabulary (deflate -6 shrinks them ~3.3×), incompressible files are random bytes;
  mtimes are fixed, so change detection never depends on the clock.
"""

WORKS = [("full", "full backup"), ("noop", "no-change incremental"),
         ("inc1", "1%-change incremental"), ("restore", "full restore (latest)")]
TOOLS = ["swiftdup", "duplicity", "restic", "rustic"]
# The peers swiftdup must be ahead of on every row (restic's repository format, two programs).
FAST_PEERS = ["restic", "rustic"]
SET_TITLES = {"a": "(a) ~1 GiB mixed", "b": "(b) 100,000 small files", "c": "(c) one 4 GiB file"}


def human(n):
    if n is None:
        return "–"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


def fmt_ratio(x):
    return "–" if x is None else f"{x:.1f}×" if x >= 10 else f"{x:.2f}×"


def load(tsv):
    rows = {}
    for line in open(tsv):
        f = line.rstrip("\n").split("\t")
        if len(f) < 10 or f[0] == "set":
            continue
        st, tgt, work, tool, status = f[0], f[1], f[2], f[3], f[9]
        num = lambda x: None if x in ("", "-") else float(x)
        rows[(st, tgt, work, tool)] = dict(
            wall=num(f[4]), cpu=(num(f[5]) or 0) + (num(f[6]) or 0) if f[5] not in ("", "-") else None,
            rss=num(f[7]) / 1024 if f[7] not in ("", "-") else None, bytes=num(f[8]), status=status)
    return rows


def report(tsv, meta_file, out):
    rows = load(tsv)
    meta = json.load(open(meta_file))
    L = []
    L.append(f"# swiftdup benchmark ({meta['date']})\n")
    L.append(f"`{meta['command']}` — scale {meta['scale']} · sets {meta['sets']} · targets {meta['targets']}\n")
    L.append(f"Machine: {meta['cpu']}, {meta['nproc']} cores, {meta['mem']}; load average at start "
             f"{meta['load_start']}, at end {meta.get('load_end', '?')}. Versions: {meta['versions']}.\n")
    L.append("Per tool: wall seconds; CPU seconds (user+sys, children included); peak RSS of the "
             "largest process (MiB); bytes added to the target. Ratio columns: the peer's wall "
             "time (bytes) divided by swiftdup's; above 1 means swiftdup is faster (writes less). "
             "A failed run, or a restore that differs from the source, is marked ✗.\n")
    sets = [s for s in meta["sets"].split(",")]
    targets = [t for t in meta["targets"].split(",")]
    tools = [t for t in TOOLS if t in meta["tools"].split(",")]
    for st in sets:
        for tgt in targets:
            if not any(k[0] == st and k[1] == tgt for k in rows):
                continue
            L.append(f"\n## {SET_TITLES[st]} → {tgt}{'://' if tgt == 'file' else ' (swiftkeys:// / swift:// / restic swift:)'}\n")
            if st in meta.get("setinfo", {}):
                L.append(meta["setinfo"][st] + "\n")
            hdr = ["work"]
            for t in tools:
                hdr += [f"{t} wall s", "CPU s", "RSS MiB", "written"]
            peers = [t for t in tools if t != "swiftdup"]
            for t in peers:
                hdr += [f"{t}/swiftdup wall", f"{t}/swiftdup bytes"]
            hdr += ["best peer/swiftdup wall"]
            L.append("| " + " | ".join(hdr) + " |")
            L.append("|" + "---|" * len(hdr))
            for w, wname in WORKS:
                cells = [wname]
                for t in tools:
                    r = rows.get((st, tgt, w, t))
                    if r is None:
                        cells += ["–"] * 4
                        continue
                    bad = "" if r["status"] == "ok" else f" ✗ {r['status']}"
                    cells += [f"{r['wall']:.2f}{bad}" if r["wall"] is not None else f"–{bad}",
                              f"{r['cpu']:.2f}" if r["cpu"] is not None else "–",
                              f"{r['rss']:.1f}" if r["rss"] is not None else "–",
                              human(r["bytes"]) if w != "restore" else "(read)"]
                sd = rows.get((st, tgt, w, "swiftdup"))
                for t in peers:
                    r = rows.get((st, tgt, w, t))
                    ok = sd and r and sd["status"] == "ok" and r["status"] == "ok"
                    cells.append(fmt_ratio(ratio(r["wall"], sd["wall"])) if ok else "–")
                    cells.append(fmt_ratio(ratio(r["bytes"], sd["bytes"])) if ok and w != "restore" else "–")
                best = best_peer(rows, st, tgt, w, peers)
                ok = sd and sd["status"] == "ok" and best
                cells.append(f"{fmt_ratio(ratio(best[1]['wall'], sd['wall']))} ({best[0]})" if ok else "–")
                L.append("| " + " | ".join(cells) + " |")
    if "wasi" in meta:
        w = meta["wasi"]
        L.append("\n## WASI build vs native, full backup of (a) to file://\n")
        L.append(w + "\n")
    L.append("\n## Targets\n")
    L += targets_section(rows, meta, sets, targets)
    L.append("\n## How it was measured\n")
    cache = ("the page cache is dropped (`echo 1 > /proc/sys/vm/drop_caches`): every tool reads "
             "the contents of its source or repository from disk and writes into free memory, "
             "whatever ran before (cached inodes and directory entries stay)."
             if meta.get("drop_caches") else
             "nothing else: the page cache holds what earlier runs left (the data was just "
             "written), so a tool's order can decide what it finds cached.")
    L.append(METHOD.replace("{cache}", cache) + "\n")
    text = "\n".join(L) + "\n"
    open(out, "w").write(text)
    sys.stdout.write(text)


def best_peer(rows, st, tgt, w, peers):
    """(name, row) of the fastest peer that ran this row successfully, or None."""
    ok = [(t, rows[(st, tgt, w, t)]) for t in peers
          if (st, tgt, w, t) in rows and rows[(st, tgt, w, t)]["status"] == "ok"
          and rows[(st, tgt, w, t)]["wall"] is not None]
    return min(ok, key=lambda x: x[1]["wall"]) if ok else None


def targets_section(rows, meta, sets, targets):
    L = []

    def get(st, tgt, w, t):
        r = rows.get((st, tgt, w, t))
        return r if r and r["status"] == "ok" else None

    def faster(st, w, peer, need, label):
        if peer not in meta["tools"].split(","):
            return
        for tgt in targets:
            sd, p = get(st, tgt, w, "swiftdup"), get(st, tgt, w, peer)
            if (st, tgt, w, "swiftdup") not in rows and (st, tgt, w, peer) not in rows:
                continue
            if not sd or not p:
                L.append(f"- {label}, {tgt}: **not measured** (a run failed or the tool is missing)")
                continue
            x = p["wall"] / sd["wall"] if sd["wall"] > 0 else float("inf")
            cpu = f"; CPU time {p['cpu'] / sd['cpu']:.1f}×" if sd["cpu"] else ""
            if x >= need if need > 1 else x > need:
                L.append(f"- {label}, {tgt}: **met** — {peer} {p['wall']:.2f} s / swiftdup {sd['wall']:.2f} s = {x:.1f}×{cpu}")
            else:
                L.append(f"- {label}, {tgt}: **missed** — {x:.2f}× where {'≥' if need > 1 else '>'}{need:g}× is "
                         f"needed ({peer} {p['wall']:.2f} s, swiftdup {sd['wall']:.2f} s): swiftdup would have to "
                         f"take under {p['wall'] / need:.2f} s, {need / x:.2f}× less{cpu}")

    tools = meta["tools"].split(",")
    for st in sets:
        for tgt in targets:
            for w, wname in WORKS:
                sd = get(st, tgt, w, "swiftdup")
                best = best_peer(rows, st, tgt, w, [t for t in FAST_PEERS if t in tools])
                if (st, tgt, w, "swiftdup") not in rows or not best:
                    continue
                label = f"{wname} of ({st}) to {tgt}, ahead of the best of restic and rustic"
                if not sd:
                    L.append(f"- {label}: **not measured** (swiftdup's run failed)")
                    continue
                x = best[1]["wall"] / sd["wall"] if sd["wall"] > 0 else float("inf")
                if x > 1:
                    L.append(f"- {label}: **met** — {best[0]} {best[1]['wall']:.2f} s / swiftdup {sd['wall']:.2f} s = {x:.2f}×")
                else:
                    L.append(f"- {label}: **missed** — {best[0]} {best[1]['wall']:.2f} s, swiftdup {sd['wall']:.2f} s: "
                             f"swiftdup would have to take under {best[1]['wall']:.2f} s, {1 / x:.2f}× less")
    if "a" in sets:
        faster("a", "full", "duplicity", 5, "Full backup of (a), encrypted, ≥5× faster than duplicity")
    if "b" in sets:
        faster("b", "noop", "duplicity", 20, "No-change incremental of (b), ≥20× faster than duplicity")
    if "a" in sets:
        faster("a", "inc1", "duplicity", 10, "1%-change incremental of (a), ≥10× faster than duplicity")
        for tgt in targets:
            sd, p = get("a", tgt, "inc1", "swiftdup"), get("a", tgt, "inc1", "duplicity")
            if not sd or not p:
                continue
            x = sd["bytes"] / p["bytes"] if p["bytes"] else float("inf")
            label = "1%-change incremental of (a), ≤1.2× the bytes duplicity uploads"
            if x <= 1.2:
                L.append(f"- {label}, {tgt}: **met** — swiftdup {human(sd['bytes'])}, duplicity {human(p['bytes'])} ({x:.2f}×)")
            else:
                L.append(f"- {label}, {tgt}: **missed** — swiftdup {human(sd['bytes'])} = {x:.2f}× duplicity's "
                         f"{human(p['bytes'])}; {human(sd['bytes'] - 1.2 * p['bytes'])} over the limit")
        faster("a", "restore", "duplicity", 5, "Full restore of (a), ≥5× faster than duplicity")
    # Memory.
    sd_rss = [(k, r["rss"]) for k, r in rows.items() if k[3] == "swiftdup" and r["rss"] is not None]
    if sd_rss:
        worst = max(sd_rss, key=lambda x: x[1])
        over = [(k, v) for k, v in sd_rss if v >= 100]
        if not over:
            L.append(f"- Peak RSS < 100 MiB in every case: **met** — highest {worst[1]:.1f} MiB "
                     f"({worst[0][2]} of ({worst[0][0]}) to {worst[0][1]}), over {len(sd_rss)} swiftdup runs")
        else:
            L.append(f"- Peak RSS < 100 MiB in every case: **missed** in {len(over)} runs — highest "
                     f"{worst[1]:.1f} MiB ({worst[0][2]} of ({worst[0][0]}) to {worst[0][1]}), "
                     f"{worst[1] - 100:.1f} MiB over")
    if "a" in sets and "c" in sets:
        for tgt in targets:
            a = [r["rss"] for k, r in rows.items() if k[0] == "a" and k[1] == tgt and k[3] == "swiftdup" and r["rss"]]
            c = [r["rss"] for k, r in rows.items() if k[0] == "c" and k[1] == tgt and k[3] == "swiftdup" and r["rss"]]
            if not a or not c:
                continue
            label = "Peak RSS the same for (c) as for (a) (within 10%)"
            if max(c) <= max(a) * 1.1:
                L.append(f"- {label}, {tgt}: **met** — (c) {max(c):.1f} MiB, (a) {max(a):.1f} MiB")
            else:
                L.append(f"- {label}, {tgt}: **missed** — (c) {max(c):.1f} MiB vs (a) {max(a):.1f} MiB "
                         f"({max(c) / max(a):.2f}×)")
    elif "c" not in sets:
        L.append("- Peak RSS the same for (c) as for (a): **not measured** (set c not run)")
    if "wasi_ratio" in meta:
        x = meta["wasi_ratio"]
        ex = meta.get("wasi_ratio_excl")
        ex = f" (without wasmtime's start-up compilation: {ex:.2f}×)" if ex is not None else ""
        if x <= 2:
            L.append(f"- WASI build within 2× of native single-threaded on (a): **met** — {x:.2f}×{ex}")
        else:
            L.append(f"- WASI build within 2× of native single-threaded on (a): **missed** — {x:.2f}×, "
                     f"{x / 2:.2f}× too slow{ex}")
    else:
        L.append("- WASI build within 2× of native single-threaded on (a): **not measured** ("
                 + meta.get("wasi_skip", "set a not run") + ")")
    if sets != ["a", "b", "c"] or meta["scale"] != "1":
        L.append(f"\nNote: scale {meta['scale']}, sets {','.join(sets)}: the performance targets are "
                 "defined for the full-size sets; small scales exaggerate fixed costs (process "
                 "start, gpg, Python imports).")
    return L


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen":
        gen(args[0], args[1], float(args[2]))
    elif cmd == "mutate":
        mutate(args[0], args[1], float(args[2]))
    elif cmd == "size":
        print(estimate(args[0], float(args[1])))
    elif cmd == "swift-bytes":
        print(swift_bytes(args[0], args[1]))
    elif cmd == "report":
        report(args[0], args[1], args[2])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
