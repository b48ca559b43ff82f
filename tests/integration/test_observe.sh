#!/bin/sh
# What an operator watches: Prometheus /metrics on its own listener,
# scraped and checked by a strict parser of the text format (families,
# types, label syntax, histogram buckets), with counts that follow pushes,
# pulls and collections; the access log as JSON lines; audit lines for
# pushes, tag moves and deletes; the health endpoints. Prints TAP.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl not installed"
command -v python3 >/dev/null || skip_all "python3 not installed"

berthd_start --no-tls --metrics-listen 127.0.0.1:0 --access-log-format json \
	--gc-interval 1s --gc-grace 0
MURL=$(sed -n 's/.*metrics on \(http[^ ]*\)metrics.*/\1/p' "$T/berthd.log" | tail -n 1)
check "berthd says where the metrics are" test -n "$MURL"
push_image "$T/a" obs/app v1 300000 >/dev/null 2>&1
push_image "$T/b" obs/app v1 200000 >/dev/null 2>&1     # moves the tag
curl -sf -o /dev/null "$URL/v2/obs/app/blobs/$(cat "$T/b/digest")"
curl -sf -o /dev/null "$URL/v2/obs/app/manifests/nope" || true
MD="sha256:$(sha256sum "$T/a/man" | cut -d' ' -f1)"
curl -sf -X DELETE -o /dev/null "$URL/v2/obs/app/manifests/$MD"
sleep 3         # a collection runs and frees a's layer
curl -sf "${MURL}metrics" >"$T/scrape"
check "a scrape parses strictly and holds what happened" python3 - "$T/scrape" \
	"$(stat -c %s "$T/b/blob")" <<'PY'
import math, re, sys
text = open(sys.argv[1]).read()
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(\{(?:%s)(?:,(?:%s))*\})? (\S+)$" % (NAME, LABEL, LABEL))
assert text.endswith("\n")
types, helps, samples = {}, {}, []
for line in text.split("\n")[:-1]:
    if line.startswith("# HELP "):
        n = line.split(" ")[2]
        assert n not in helps, "two HELP " + n
        helps[n] = line
    elif line.startswith("# TYPE "):
        _, _, n, t = line.split(" ")
        assert t in ("counter", "gauge", "histogram"), t
        assert n not in types, "two TYPE " + n
        types[n] = t
    else:
        m = SAMPLE.match(line)
        assert m, "bad line: " + line
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        v = float(value)
        assert not math.isnan(v)
        fam = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert fam in types and fam in helps, "no TYPE/HELP before " + name
        if types[fam] == "counter":
            assert v >= 0
        samples.append((name, dict(re.findall(r'([a-zA-Z_]\w*)="([^"]*)"', labels)), v))
def get(name, **lab):
    return [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in lab.items())]
# histograms: cumulative buckets, +Inf equals count
for n, t in types.items():
    if t != "histogram":
        continue
    routes = {l["route"] for m, l, v in samples if m == n + "_bucket"}
    for r in routes:
        b = [(l["le"], v) for m, l, v in samples if m == n + "_bucket" and l["route"] == r]
        vals = [v for _, v in b]
        assert vals == sorted(vals), (r, b)
        assert b[-1][0] == "+Inf" and b[-1][1] == get(n + "_count", route=r)[0]
assert get("berth_http_requests_total", route="manifest", status="201")[0] == 2
assert get("berth_http_requests_total", route="manifest", status="404")[0] == 1
assert get("berth_http_requests_total", route="blob", status="200")[0] >= 1
assert get("berth_http_sent_bytes_total")[0] >= int(sys.argv[2])
assert get("berth_http_received_bytes_total")[0] >= 500000
assert get("berth_store_objects", kind="repositories")[0] == 1
assert get("berth_gc_runs_total")[0] >= 1
assert get("berth_gc_deleted_blobs_total")[0] >= 1
assert get("berth_gc_reclaimed_bytes_total")[0] >= 300000
raw = get("berth_store_blob_bytes", form="raw")[0]
st = get("berth_store_blob_bytes", form="stored")[0]
assert raw >= int(sys.argv[2]) and abs(get("berth_store_compression_ratio")[0] - st / raw) < 1e-3
assert get("berth_store_map_used_bytes")[0] > 0 and get("berth_store_map_size_bytes")[0] > 0
assert get("berth_uploads_open")[0] >= 0 and len(get("berth_store_free_bytes")) == 1
PY
check "the metrics listener serves nothing else" sh -c "
	[ \$(curl -s -o /dev/null -w '%{http_code}' ${MURL}v2/) = 404 ] &&
	[ \$(curl -s -o /dev/null -w '%{http_code}' $URL/metrics) = 404 ]"
check "access log lines are JSON with id, user, repository, reference, bytes, time, status" python3 - "$T/berthd.log" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    i = line.find(" access {")
    if i < 0:
        continue
    o = json.loads(line[i + 8:])
    assert set(o) >= {"id", "peer", "user", "method", "target", "repository",
                      "reference", "status", "bytes_in", "bytes_out", "ms"}, o
    n += 1
    if o["method"] == "PUT" and "/manifests/" in o["target"]:
        assert o["repository"] == "obs/app" and o["reference"] == "v1" and o["status"] == 201
        assert o["bytes_in"] > 0
assert n >= 10, n
PY
check "audit lines for pushes, tag moves and deletes, and for the collection" sh -c "
	[ \$(grep -c 'audit: anonymous pushed manifest obs/app:v1' $T/berthd.log) = 2 ] &&
	grep -q 'audit: anonymous deleted manifest obs/app:sha256:' $T/berthd.log &&
	grep -q 'gc: deleted blob sha256:' $T/berthd.log"
tap_end
