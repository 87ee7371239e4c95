"""The report's capacity planner: a form whose inline JavaScript recomputes `rtcap plan` as you type.

The page embeds the same per-transport models `rtcap plan` uses (reports/plan.py `run_models`) and
the unit tables of its parsers as JSON; the script below implements plan.py's `plan_transport` and
parsers again, operation for operation, so both give the same numbers (tests/reports/
test_planner_browser.py checks it in headless Chromium). Nothing is fetched: it works from file://.
Inputs can also come from the URL hash, e.g. report.html#viewers=1M&freshness=500ms.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from rtcap.reports import plan
from rtcap.reports.rundir import Run
from rtcap.reports.units import finite, nan_to_none

FIELDS = (  # (input name, label, CLI option)
    ("viewers", "viewers", "--viewers"),
    ("update_rate", "update rate", "--update-rate"),
    ("freshness", "freshness", "--freshness"),
    ("instance_memory", "instance memory", "--instance-memory"),
    ("instance_cores", "instance cores", "--instance-cores"),
    ("headroom", "headroom", "--headroom"),
)
DEFAULTS = {"viewers": "100000", "update_rate": "1/s", "freshness": "1s", "instance_memory": "4GiB",
            "instance_cores": "1", "headroom": "20%"}
EXPLANATION = (
    "How many server instances (one process each, as measured) the viewers below need, per transport, "
    "from this report's fitted models: memory per connection and baseline, CPU per delivered message "
    "(push) or per request (polling), the most connections held within the latency limit, and wire bytes "
    "per message or request. Figures read expected (low–high), the 95% confidence intervals of the fits "
    "carried through. Change any input and the result updates; rtcap plan RUN with the same options "
    "prints the same numbers. Units: 1/s, 10/min; 1s, 500ms; 4GiB, 512MiB, 4G (binary), 4GB (decimal); "
    "100k, 1.5M; 20% or 0.2.")
STYLE = """#planner form{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;margin:.5rem 0}
#planner label{display:flex;flex-direction:column;font-size:.85rem;width:10rem}#planner input{width:9rem}
#planner input.bad{outline:2px solid #c00}#planner .err{color:#c00;font-size:.8rem}"""

SCRIPT = r"""(function () {
"use strict";
var D = JSON.parse(document.getElementById("plan-model").textContent);
var U = D.units, RES = ["memory", "cpu", "connections"];
var WORDS = {memory: "memory", cpu: "CPU", connections: "connections at SLO"};
var UNIT = {message: ["msg/s", "message"], request: ["req/s", "request"]};
function split(text, what, ex) {
  var m = new RegExp("^" + U.number + "([a-z/%]*)$").exec(String(text).replace(/[\s_]/g, "").toLowerCase());
  if (!m) throw new Error("cannot read '" + text + "' as " + what + "; use e.g. " + ex);
  return [parseFloat(m[1]), m[2]];
}
function unitOf(u, t) {
  if (Object.prototype.hasOwnProperty.call(t, u)) return u;
  var s = u.slice(0, -1);
  return u.slice(-1) === "s" && Object.prototype.hasOwnProperty.call(t, s) ? s : null;
}
function bad(text, what, ex) { return new Error("cannot read '" + text + "' as " + what + "; use e.g. " + ex); }
var parse = {
  update_rate: function (t) { var ex = "1/s, 10/min, 0.5", r = split(t, "an update rate", ex);
    var u = unitOf(r[1].charAt(0) === "/" ? r[1].slice(1) : (r[1] === "" ? "s" : "?"), U.rate);
    if (u === null || !(r[0] > 0)) throw bad(t, "an update rate above 0", ex); return r[0] / U.rate[u]; },
  freshness: function (t) { var ex = "1s, 500ms, 10s", r = split(t, "a duration", ex);
    var u = unitOf(r[1] === "" ? "s" : r[1], U.duration);
    if (u === null || !(r[0] > 0)) throw bad(t, "a duration above 0", ex);
    return r[0] * U.duration[u][0] / U.duration[u][1]; },
  instance_memory: function (t) { var ex = "4GiB, 512MiB, 4G", r = split(t, "a memory size", ex);
    if (!Object.prototype.hasOwnProperty.call(U.size, r[1]) || !(r[0] > 0)) throw bad(t, "a memory size above 0", ex);
    return r[0] * U.size[r[1]]; },
  viewers: function (t) { var ex = "100000, 100k, 1.5M", r = split(String(t).replace(/,/g, ""), "a number of viewers", ex);
    var ok = Object.prototype.hasOwnProperty.call(U.count, r[1]);
    var n = ok ? Math.floor(r[0] * U.count[r[1]] + 0.5) : 0;
    if (n < 1) throw bad(t, "a number of viewers (at least 1)", ex); return n; },
  headroom: function (t) { var r = split(t, "a headroom", "20% or 0.2"), v = r[1] === "%" ? r[0] / 100 : r[0];
    if ((r[1] !== "" && r[1] !== "%") || !(v >= 0 && v < 1)) throw bad(t, "a headroom from 0 to below 1", "20% or 0.2");
    return v; },
  instance_cores: function (t) { var r = split(t, "a number of cores", "1, 2, 0.5");
    if (["", "core", "cores"].indexOf(r[1]) < 0 || !(r[0] > 0)) throw bad(t, "a number of cores above 0", "1, 2, 0.5");
    return r[0]; }
};
function perInstance(budget, perViewer) {
  if (budget <= 0) return 0;
  if (perViewer <= 0) return Infinity;
  return Math.floor(budget / perViewer);
}
function instances(v, per) { return per === Infinity ? 1 : Math.max(1, Math.ceil(v / per)); }
function atSlo(m, p) {
  var limit = m.work === "update" ? p.freshness_s * 1000 : m.slo.delivery_p99_ms;
  var ok = m.slo_steps.filter(function (s) { return s[1] <= limit; });
  if (!ok.length) return [null, false, limit];
  var best = ok[ok.length - 1];
  return [best[0], m.top_users !== null && best[2] >= m.top_users, limit];
}
function planTransport(m, p) {  // reports/plan.py plan_transport, step for step
  var w = m.work === "update" ? p.update_rate : 1 / p.freshness_s, work = p.viewers * w;
  var out = {run: m.run, transport: m.transport, unit: m.unit, work_per_s: work, available: false, why: null};
  var c = atSlo(m, p), mem = m.memory, cpu = m.cpu, bw = m.bandwidth, i, r;
  out.connections_lower_bound = c[1]; out.latency_limit_ms = c[2];
  var missing = [mem, cpu].filter(function (x) { return "why" in x; }).map(function (x) { return x.why; });
  if (c[0] === null) missing.push("no valid step had delivery p99 <= " + c[2] + " ms with error rate <= " + m.slo.error_rate);
  if (missing.length) { out.why = missing.join("; "); return out; }
  var slopes = [mem.slope_lo, mem.slope, mem.slope_hi].map(function (s) { return Math.max(0, s); });
  var units = [cpu.per_unit_lo, cpu.per_unit, cpu.per_unit_hi].map(function (k) { return Math.max(0, k); });
  var memBudget = p.instance_memory * (1 - p.headroom) - mem.baseline;
  var cpuBudget = p.instance_cores * (1 - p.headroom) - cpu.idle_cores;
  var per = {memory: slopes.map(function (s) { return perInstance(memBudget, s); }),
             cpu: units.map(function (k) { return perInstance(cpuBudget, k * w); }),
             connections: [c[0], c[0], c[0]]};
  if (per.memory.indexOf(0) >= 0 || per.cpu.indexOf(0) >= 0) {
    out.why = "one instance cannot hold a single viewer: its " + (per.memory.indexOf(0) >= 0 ? "memory" : "CPU") +
      " after " + Math.round(p.headroom * 100) + "% headroom does not cover the idle baseline and one viewer";
    return out;
  }
  var by = {}, n = [];
  for (r = 0; r < 3; r++) by[RES[r]] = per[RES[r]].map(function (x) { return instances(p.viewers, x); });
  var deciding = c[1] ? ["memory", "cpu"] : RES, within = [];
  for (i = 0; i < 3; i++) {
    n.push(Math.max.apply(null, deciding.map(function (x) { return by[x][i]; })));
    within.push(Math.max(by.memory[i], by.cpu[i], by.connections[i]));
  }
  var bytes = "why" in bw ? [null, null, null] : [bw.per_unit_lo, bw.per_unit, bw.per_unit_hi];
  out.available = true; out.per_instance = per; out.instances_by = by; out.instances = n;
  out.instances_within_measured = within;
  out.binding = deciding.filter(function (x) { return by[x][1] === n[1]; });
  out.memory_bytes = [0, 1, 2].map(function (j) { return n[j] * mem.baseline + slopes[j] * p.viewers; });
  out.cpu_cores = [0, 1, 2].map(function (j) { return n[j] * cpu.idle_cores + units[j] * work; });
  out.bandwidth_bytes_per_s = bytes.map(function (b) { return b === null ? null : work * b; });
  out.bandwidth_month_bytes = bytes.map(function (b) { return b === null ? null : work * b * D.month_s; });
  out.bandwidth_why = bw.why || null;
  return out;
}
function sep(x, d) { var s = Math.abs(x).toFixed(d).split("."); s[0] = s[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (x < 0 && Number(s.join(".")) !== 0 ? "-" : "") + s.join("."); }
function fInt(x) { return x === null || x === Infinity ? "no limit" : sep(x, 0); }
function fSize(x) { var u = [["TiB", 1099511627776], ["GiB", 1073741824], ["MiB", 1048576], ["KiB", 1024]];
  for (var i = 0; i < u.length; i++) if (Math.abs(x) >= u[i][1]) return sep(x / u[i][1], 1) + " " + u[i][0];
  return sep(x, 0) + " B"; }
function fCores(x) { return sep(x, Math.abs(x) < 10 ? 2 : 1); }
function fRate(b) { var m = b * 8 / 1e6; return m >= 1000 ? sep(m / 1000, 2) + " Gbit/s" : sep(m, 1) + " Mbit/s"; }
function fVol(t) { return t >= 1e12 ? sep(t / 1e12, 1) + " TB" : sep(t / 1e9, 1) + " GB"; }
function key(x) { return x === null ? Infinity : x; }
function fRange(v, f) {  // plan_cli.fmt_range
  var lo = key(v[0]) <= key(v[2]) ? v[0] : v[2], hi = lo === v[0] ? v[2] : v[0];
  var a = f(lo), mid = f(v[1]), b = f(hi);
  if (a === mid && mid === b) return mid;
  var last = function (t) { return t.slice(t.lastIndexOf(" ") + 1); };
  var head = function (t) { return t.slice(0, Math.max(0, t.lastIndexOf(" "))); };
  if (mid.indexOf(" ") >= 0 && !/^[a-z]/i.test(mid) && last(a) === last(mid) && last(mid) === last(b))
    return head(mid) + " (" + head(a) + "–" + head(b) + ") " + last(mid);
  return mid + " (" + a + "–" + b + ")";
}
function notes(p) {  // plan_cli.notes
  var per = p.per_instance, conns = fInt(per.connections[1]), lim = sep(p.latency_limit_ms, 0);
  var out = ["viewers per instance: " + RES.map(function (r) { return WORDS[r] + " " + fRange(per[r], fInt); }).join(", ")];
  if (p.connections_lower_bound) {
    var beyond = p.instances_within_measured[1] > p.instances[1];
    out.push("connections at SLO (" + conns + ") is a lower bound: delivery p99 stayed within " + lim +
      " ms at every valid step measured" + (beyond
      ? ", so the plan extrapolates the memory and CPU fits beyond it; " + fRange(p.instances_within_measured, fInt) +
        " instances would keep each within what was measured (raise --steps, and --processes, to find the real limit)"
      : "; memory or CPU binds first, so the unmeasured limit does not change the plan"));
  } else {
    out.push("connections at SLO: " + conns + " held with delivery p99 <= " + lim + " ms; a valid step with more load did not meet it");
  }
  out.push(p.bandwidth_why ? "bandwidth unavailable: " + p.bandwidth_why : "bandwidth over 30 days: " +
    fRange(p.bandwidth_month_bytes, fVol) + " (both directions, wire bytes per " + UNIT[p.unit][1] + " as measured)");
  return out;
}
function modelLine(m) {  // plan_cli.model_line
  var u = UNIT[m.unit][1], mem = m.memory, cpu = m.cpu, bw = m.bandwidth, parts = [];
  var us = function (k) { return sep(k * 1e6, 1); };
  var per = m.connections_per_viewer || 1;
  var unitWord = per === 1 ? "/conn" : "/viewer (" + per + " connections each)";
  if (!("why" in mem)) parts.push("memory " + fSize(mem.slope) + unitWord + " (95% CI " + fSize(mem.slope_lo) + "–" +
    fSize(mem.slope_hi) + ") + " + fSize(mem.baseline) + " baseline");
  if (!("why" in cpu)) parts.push("CPU " + us(cpu.per_unit) + " µs per " + u + " (95% CI " + us(cpu.per_unit_lo) + "–" +
    us(cpu.per_unit_hi) + ") + " + cpu.idle_cores.toFixed(3) + " cores idle");
  if (!("why" in bw)) parts.push(sep(bw.per_unit, 0) + " wire B per " + u);
  return "model: " + (parts.length ? parts.join("; ") : "none");
}
var form = document.getElementById("plan-form"), body = document.getElementById("plan-body");
var notesEl = document.getElementById("plan-notes"), status = document.getElementById("plan-status");
function cell(tr, text, field, values, span) {
  var td = document.createElement("td"); td.textContent = text;
  if (field) { td.setAttribute("data-field", field); td.setAttribute("data-values", JSON.stringify(values)); }
  if (span) { td.colSpan = span; td.className = "text"; }
  tr.appendChild(td); return td;
}
function render() {
  var p = {}, errors = 0;
  Object.keys(parse).forEach(function (name) {
    var input = form.elements[name], err = document.getElementById("plan-err-" + name);
    try { p[name === "freshness" ? "freshness_s" : name] = parse[name](input.value); input.className = ""; err.textContent = ""; }
    catch (e) { errors++; input.className = "bad"; err.textContent = e.message; }
  });
  body.textContent = ""; notesEl.textContent = "";
  if (errors) { status.textContent = "fix the input marked in red"; body.setAttribute("data-state", "error"); return; }
  status.textContent = ""; body.setAttribute("data-state", "ok");
  D.models.forEach(function (m) {
    var r = planTransport(m, p), tr = document.createElement("tr");
    tr.setAttribute("data-run", r.run); tr.setAttribute("data-transport", r.transport);
    tr.setAttribute("data-available", String(r.available));
    tr.setAttribute("data-lower-bound", String(r.connections_lower_bound));
    if (D.multi) cell(tr, r.run).className = "text";
    cell(tr, r.transport).className = "text";
    cell(tr, fInt(r.work_per_s) + " " + UNIT[r.unit][0], "work_per_s", r.work_per_s);
    var li = document.createElement("li"), ul = document.createElement("ul");
    li.textContent = (D.multi ? r.run + " / " : "") + r.transport + ":";
    (r.available ? notes(r) : []).concat([modelLine(m)]).forEach(function (t) {
      var x = document.createElement("li"); x.textContent = t; ul.appendChild(x); });
    li.appendChild(ul); notesEl.appendChild(li);
    if (!r.available) { cell(tr, "unavailable: " + r.why, null, null, 9); body.appendChild(tr); return; }
    cell(tr, fRange(r.instances, fInt), "instances", r.instances);
    cell(tr, r.binding.map(function (x) { return WORDS[x]; }).join(", "), "binding", r.binding).className = "text";
    RES.forEach(function (x) { cell(tr, fRange(r.instances_by[x], fInt), "instances_by." + x, r.instances_by[x]); });
    cell(tr, fRange(r.instances_within_measured, fInt), "instances_within_measured", r.instances_within_measured);
    cell(tr, fRange(r.memory_bytes, fSize), "memory_bytes", r.memory_bytes);
    cell(tr, fRange(r.cpu_cores, fCores), "cpu_cores", r.cpu_cores);
    cell(tr, r.bandwidth_why ? "–" : fRange(r.bandwidth_bytes_per_s, fRate), "bandwidth_bytes_per_s", r.bandwidth_bytes_per_s);
    RES.forEach(function (x) { tr.setAttribute("data-per-" + x, JSON.stringify(r.per_instance[x])); });
    body.appendChild(tr);
  });
}
// Inputs from the URL hash (#viewers=1M&freshness=500ms) so a plan can be linked or scripted.
function fromHash() {
  (location.hash.slice(1) ? location.hash.slice(1).split("&") : []).forEach(function (kv) {
    var i = kv.indexOf("="), k = decodeURIComponent(kv.slice(0, i)), v = decodeURIComponent(kv.slice(i + 1));
    if (i > 0 && form.elements[k]) form.elements[k].value = v;
  });
}
fromHash();
window.addEventListener("hashchange", function () { fromHash(); render(); });
form.addEventListener("input", render);
form.addEventListener("submit", function (e) { e.preventDefault(); render(); });
render();
})();"""


def _e(value: Any) -> str:
    """Escape text for HTML."""
    return html.escape("" if value is None else str(value), quote=True)


def planner_data(runs: Sequence[Run]) -> dict[str, Any]:
    """What the page's script needs: every run's transport models and the unit grammar."""
    models = [m for run in runs for m in plan.run_models(run)]
    return {"models": models, "multi": len(runs) > 1, "month_s": plan.MONTH_S,
            "units": {"number": plan.NUMBER, "rate": plan.RATE_UNITS, "duration": plan.DURATION_UNITS,
                      "size": plan.SIZE_UNITS, "count": plan.COUNT_UNITS}}


def _script_json(data: Any) -> str:
    """JSON safe inside <script>: no '</script>' or '<!--' can close or confuse it."""
    text = json.dumps(nan_to_none(data), allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def planner_section(runs: Sequence[Run]) -> str:
    """The planner's <section id="planner"> (form, result table, notes, formulas, script)."""
    data = planner_data(runs)
    if not data["models"]:
        return ""
    rate = finite(((runs[0].meta or {}).get("target") or {}).get("rate"))
    # The run's own publish rate is the likeliest update rate to plan for.
    defaults = {**DEFAULTS, **({"update_rate": f"{rate:g}/s"} if rate and rate > 0 else {})}
    inputs = "".join(
        f'<label title="rtcap plan {_e(opt)}">{_e(label)}<input name="{name}" value="{_e(defaults[name])}" '
        f'autocomplete="off"><span class="err" id="plan-err-{name}"></span></label>'
        for name, label, opt in FIELDS)
    head = (["run"] if data["multi"] else []) + [
        "transport", "work", "instances", "binds", "by memory", "by CPU", "by conns at SLO",
        "within measured", "memory (all instances)", "CPU cores (all)", "bandwidth"]
    formulas = "".join(f"<li>{_e(f)}</li>" for f in plan.FORMULAS)
    return (f'<section id="planner"><h2>Capacity planner</h2><style>{STYLE}</style>'
            f'<p class="note">{_e(EXPLANATION)}</p><form id="plan-form" autocomplete="off">{inputs}</form>'
            '<noscript><p class="warn">The planner needs JavaScript; <code>rtcap plan RUN</code> prints the '
            'same figures.</p></noscript><p id="plan-status" class="warn"></p>'
            f'<table id="plan-result"><thead><tr>{"".join(f"<th>{_e(h)}</th>" for h in head)}</tr></thead>'
            '<tbody id="plan-body"></tbody></table><ul id="plan-notes" class="note"></ul>'
            f'<details><summary>How the plan is computed</summary><ul class="note">{formulas}</ul></details>'
            f'<script type="application/json" id="plan-model">{_script_json(data)}</script>'
            f"<script>{SCRIPT}</script></section>")
