#!/usr/bin/env bash
# Runs the public HTTP cache test suite (npm package http-cache-tests, the suite behind
# cache-tests.fyi, which scores Varnish, nginx, Squid, Apache, ATS, Fastly) against a caching
# reverse proxy on 127.0.0.1, and prints how many tests of each kind pass.
#
# Needs node and npm (the suite is installed from the npm registry on first use).
# Usage, from the workspace root:
#   examples/cache-proxy/conformance.sh                 # builds and runs the example cache proxy
#   examples/cache-proxy/conformance.sh -- CMD ARGS...  # any proxy; it must listen on $PROXY_PORT
#                                                        # and forward to http://127.0.0.1:$ORIGIN_PORT
# Environment: ORIGIN_PORT (default 8000), PROXY_PORT (8002), OUT (results JSON, default
# target/cache-conformance/results.json), SUITE_DIR (where the suite is installed,
# default target/cache-conformance/suite), ONLY (one test id, to debug it),
# SUITE_REPO (a checkout of the current suite, github http-tests/cache-tests, which is newer
# than the npm package: adds CDN-Cache-Control and interim-response tests and revises the Age
# tests; its dependencies are npm-installed into it on first use; the published results of
# cache-tests.fyi are scored beside yours).
# Two scores are printed. "all": every test of each kind that passed. "gated": the rule
# cache-tests.fyi uses (a test counts only when every test it depends on passes), browser-only
# tests left out. The last line printed is the gated score:
# "gated required P/N optimal P/N check P/N".
set -euo pipefail

ORIGIN_PORT=${ORIGIN_PORT:-8000}
PROXY_PORT=${PROXY_PORT:-8002}
work=${WORK_DIR:-target/cache-conformance}
SUITE_DIR=${SUITE_DIR:-$work/suite}
OUT=${OUT:-$work/results.json}
mkdir -p "$work" "$SUITE_DIR" "$(dirname "$OUT")"
SUITE_DIR=$(cd "$SUITE_DIR" && pwd)
work=$(cd "$work" && pwd)
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
if [[ -n ${SUITE_REPO:-} ]]; then
  suite=$(cd "$SUITE_REPO" && pwd)
  engine=test-engine/   # the repository's layout
  [[ -d $suite/node_modules ]] || (cd "$suite" && npm install --omit=dev --silent --no-audit --no-fund >/dev/null)
else
  suite=$SUITE_DIR/node_modules/http-cache-tests
  engine=""             # the npm package's layout
  if [[ ! -f $suite/cli.mjs ]]; then
    npm install --silent --no-audit --no-fund --prefix "$SUITE_DIR" http-cache-tests@0.4.5 >/dev/null
  fi
fi

if [[ ${1:-} == "--" ]]; then
  shift
  proxy=("$@")
else
  cargo build --quiet --release -p example-cache-proxy
  proxy=("${CARGO_TARGET_DIR:-target}/release/example-cache-proxy" --listen "127.0.0.1:$PROXY_PORT" --upstream "http://127.0.0.1:$ORIGIN_PORT")
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

(cd "$suite" && exec env npm_config_protocol=http npm_config_port="$ORIGIN_PORT" \
  npm_config_pidfile="$work/origin.pid" node "${engine}server/server.mjs") >"$work/origin.log" 2>&1 &
pids+=($!)
wait_port "$ORIGIN_PORT"

"${proxy[@]}" >"$work/proxy.log" 2>&1 &
pids+=($!)
wait_port "$PROXY_PORT"

(cd "$suite" && env npm_config_base="http://127.0.0.1:$PROXY_PORT" npm_package_config_id="${ONLY:-}" \
  node --no-warnings "${engine}cli.mjs") >"$OUT.tmp"
if [[ -n ${ONLY:-} ]]; then cat "$OUT.tmp"; exit 0; fi
mv "$OUT.tmp" "$OUT"

(cd "$suite" && node --input-type=module -e '
import fs from "fs"
import path from "path"
const [out, notPassed, engine] = process.argv.slice(1)
const index = (await import(path.resolve("tests/index.mjs"))).default
const extra = fs.existsSync("tests/surrogate-control.mjs") && !engine
  ? [(await import(path.resolve("tests/surrogate-control.mjs"))).default] : []
const suites = [...index, ...extra]
const lib = engine ? "test-engine/lib/results.mjs" : "lib/display.mjs"
const { determineTestResult } = await import(path.resolve(lib))
const results = JSON.parse(fs.readFileSync(out, "utf8"))
const score = res => {
  const all = {}, gated = {}
  for (const s of suites) for (const t of s.tests) {
    const kind = t.kind || "required"
    all[kind] ??= [0, 0]; all[kind][1]++
    if (res[t.id] === true) all[kind][0]++
    if (t.browser_only) continue
    gated[kind] ??= [0, 0]; gated[kind][1]++
    const r = determineTestResult(suites, t.id, res)
    if (r[2] === "\u2705" || r[2] === "Y") gated[kind][0]++
  }
  const fmt = c => ["required", "optimal", "check"].map(k => `${k} ${c[k][0]}/${c[k][1]}`).join(" ")
  return [fmt(all), fmt(gated)]
}
if (engine && fs.existsSync("results/index.mjs")) {
  const published = (await import(path.resolve("results/index.mjs"))).default
  for (const p of published) {
    if (p.type === "browser") continue
    const [, g] = score(JSON.parse(fs.readFileSync(path.join("results", p.file), "utf8")))
    console.log(`published ${p.name} ${p.version}: gated ${g}`)
  }
}
const failed = Object.entries(results).filter(([, v]) => v !== true).map(([k]) => k)
fs.writeFileSync(notPassed, failed.join("\n") + "\n")
const [a, g] = score(results)
console.log(`all ${a}`)
console.log(`gated ${g}`)
' "$OUT" "$work/not-passed.txt" "$engine")
