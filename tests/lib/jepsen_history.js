#!/usr/bin/env node
// Reads a Jepsen history in EDN (one map a line, as `race-probe reconcile --export jepsen`
// writes it) with edn-data, an EDN reader that is not envkit's, and checks it is a history
// Jepsen's checkers accept: :index 0, 1, 2, ...; :time never decreasing; each :process
// alternating :invoke and one completion (:ok, :fail, :info) of the same :f and, but for
// reads, the same :value; no process used again after an :info.
// Usage: jepsen_history.js FILE
// Prints one JSON object of counts on stdout; exits 1 naming the first bad line.
"use strict";
const fs = require("fs");
const path = require("path");
const { parseEDNString } = require(path.join(__dirname, "node_modules", "edn-data"));

function fail(line, why) {
  console.error(`${process.argv[2]}:${line}: ${why}`);
  process.exit(1);
}

const lines = fs.readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l.length > 0);
const counts = { events: 0, invoke: 0, ok: 0, fail: 0, info: 0, processes: 0, f: {} };
const open = new Map(); // process -> its invocation
const crashed = new Set();
const seen = new Set();
let lastTime = -1;
lines.forEach((text, i) => {
  const n = i + 1;
  let e;
  try {
    e = parseEDNString(text, { mapAs: "object", keywordAs: "string", setAs: "array" });
  } catch (err) {
    fail(n, `not EDN: ${err.message}`);
  }
  if (e === null || typeof e !== "object" || Array.isArray(e)) fail(n, "not a map");
  if (e.index !== i) fail(n, `:index ${e.index}, expected ${i}`);
  if (!Number.isInteger(e.time) || e.time < lastTime) fail(n, `:time ${e.time} goes back`);
  lastTime = e.time;
  if (!Number.isInteger(e.process)) fail(n, "no integer :process");
  if (typeof e.f !== "string") fail(n, "no :f keyword");
  if (crashed.has(e.process)) fail(n, `process ${e.process} used after its :info`);
  const inv = open.get(e.process);
  if (e.type === "invoke") {
    if (inv) fail(n, `process ${e.process} invokes twice`);
    open.set(e.process, e);
    if (!seen.has(e.process)) counts.processes++;
    seen.add(e.process);
    counts.f[e.f] = (counts.f[e.f] || 0) + 1;
  } else if (["ok", "fail", "info"].includes(e.type)) {
    if (!inv) fail(n, `process ${e.process} completes what it never invoked`);
    if (inv.f !== e.f) fail(n, `completes :${inv.f} with :${e.f}`);
    if (e.f !== "read" && JSON.stringify(inv.value) !== JSON.stringify(e.value)) {
      fail(n, `completes ${JSON.stringify(inv.value)} with ${JSON.stringify(e.value)}`);
    }
    open.delete(e.process);
    if (e.type === "info") crashed.add(e.process);
  } else {
    fail(n, `:type ${e.type}`);
  }
  counts[e.type]++;
  counts.events++;
});
if (open.size > 0) fail(lines.length, `${open.size} invocations never complete`);
console.log(JSON.stringify(counts));
