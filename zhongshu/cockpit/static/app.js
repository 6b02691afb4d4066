/* Zhongshu cockpit: every number comes from the hub protocol under the viewer's session
   (POST /v1/query, GET /v1/subscribe); this page only draws what the hub sends. */
"use strict";

const LABELS = {
  vehicles: ["辆", "vehicles"], free_spaces: ["空余车位", "free spaces"],
  visits: ["就诊人次", "visits"], minutes_in_hospital: ["平均在院分钟", "minutes in hospital"],
  trees: ["棵", "trees"], spaces: ["车位", "spaces"], garages: ["停车库", "garages"],
  congestion_index: ["拥堵指数", "congestion index"], level: ["等级", "level"],
  segment_id: ["路段", "segment"], street: ["街道", "street"], hour: ["时", "hour"],
  species: ["树种", "species"], district: ["区", "district"], minute: ["分钟", "minute"],
  time: ["时间", "time"], occupancy_pct: ["占用率 %", "occupancy %"], area: ["区域", "area"],
  records: ["条记录", "records"], residents: ["常住人口", "residents"], area_km2: ["面积 km²", "area km²"],
  direction: ["方向", "direction"], intersection_id: ["路口", "intersection"],
  cycle_s: ["建议周期 s", "cycle s"], green_ns_s: ["南北绿灯 s", "green N–S s"],
  green_ew_s: ["东西绿灯 s", "green E–W s"], current_cycle_s: ["现行周期 s", "current cycle s"],
};
const DIRECTION_NAMES = { N: ["北向", "northbound"], S: ["南向", "southbound"],
  E: ["东向", "eastbound"], W: ["西向", "westbound"] };
const LEVEL_NAMES = { smooth: ["畅通", "smooth"], slow: ["缓行", "slow"],
  congested: ["拥堵", "congested"], jammed: ["严重拥堵", "jammed"] };
const LEVEL_COLORS = { smooth: "#22c55e", slow: "#eab308", congested: "#f97316",
  jammed: "#ef4444" };
const TEXT = {
  connecting: ["正在连接中枢…", "Connecting to the hub…"],
  notPermitted: ["无权访问：中枢未授予您该区域的数据。", "Not permitted: the hub grants you no data for this area."],
  noArea: ["没有这个区域。", "There is no such area."],
  sourceDown: ["数据源不可用，自 ", "source unavailable since "],
  noLive: ["未接入实时数据流", "no live feed declared"],
  city: ["全市", "City"], loading: ["加载中…", "loading…"],
  sources: ["数据源", "sources"], up: ["正常", "up"], down: ["中断", "down"],
  degraded: ["保障缺失", "guarantees lost"],
  checkpoint: ["账本检查点", "ledger checkpoint"], witnesses: ["见证联署", "witness cosignatures"],
  final: ["已确认", "final"], entries: ["条记录", "entries"], error: ["出错：", "error: "],
  noData: ["暂无数据", "no data yet"],
  noWitness: ["未配置见证方（检查点仅由本中枢签名）", "no witness configured (checkpoints signed by this hub alone)"],
  waiting: ["等待联署", "awaiting cosignature"],
  exchanges: ["数据交换", "exchanges"], refusals: ["拒绝", "refusals"], perMinute: ["/分钟", "/min"],
};
const $ = (sel, el = document) => el.querySelector(sel);
// what the page drew, for tests and for anyone checking it against the hub
window.__zs = { results: {}, settled: new Set(), expected: 0, allSettledAt: null };
function settled(id) {
  window.__zs.settled.add(id);
  if (window.__zs.allSettledAt === null && window.__zs.settled.size >= window.__zs.expected) {
    window.__zs.allSettledAt = performance.now();
  }
}
const state = { lang: localStorage.getItem("zs-lang") || (navigator.language.startsWith("zh") ? "zh" : "en"),
  purpose: null, city: null, streams: [], charts: [], downSince: {}, streetOk: () => false };

const t = (key) => TEXT[key][state.lang === "zh" ? 0 : 1];
const label = (col) => (LABELS[col] ? LABELS[col][state.lang === "zh" ? 0 : 1] : col);
const levelName = (lv) => (LEVEL_NAMES[lv] ? LEVEL_NAMES[lv][state.lang === "zh" ? 0 : 1] : lv);
const fmt = (v) => (typeof v === "number" || (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v))
  ? Number(v).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-US") : (v ?? "—"));

class HubError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, options = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...options,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) } });
  if (r.status === 204) return null;
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw new HubError(r.status, body?.error?.code || "error", body?.error?.message || r.statusText);
  return body;
}

const query = (sql) => api("/v1/query", { method: "POST",
  body: JSON.stringify({ sql, purpose: state.purpose }) });

function areaName(level, name) {
  if (level === "city") return state.city[state.lang === "zh" && state.city.name_zh ? "name_zh" : "title"];
  const list = level === "district" ? state.city.districts : state.city.streets;
  const a = list.find((x) => x.name === name);
  if (!a) return name;
  return state.lang === "zh" ? (a.name_zh || a.title) : (a.title || a.name);
}

function anyAreaName(v) {
  if (state.city.districts.some((d) => d.name === v)) return areaName("district", v);
  if (state.city.streets.some((s) => s.name === v)) return areaName("street", v);
  return v;
}

function route() {
  const parts = location.pathname.replace(/^\/cockpit\/?/, "").split("/").filter(Boolean);
  if (parts.length === 0) return { level: "city", area: null };
  return { level: parts[0], area: decodeURIComponent(parts[1] || "") };
}

function crumbs(level, area) {
  const nav = $("#crumbs");
  nav.textContent = "";
  const link = (href, text) => { const a = document.createElement("a"); a.href = href; a.textContent = text; return a; };
  const sep = () => { const s = document.createElement("span"); s.className = "sep"; s.textContent = "›"; return s; };
  nav.append(link("/cockpit/", areaName("city")));
  let district = level === "district" ? area : null;
  if (level === "street") district = state.city.streets.find((s) => s.name === area)?.district;
  if (district) nav.append(sep(), link(`/cockpit/district/${encodeURIComponent(district)}`, areaName("district", district)));
  if (level === "street") nav.append(sep(), link(`/cockpit/street/${encodeURIComponent(area)}`, areaName("street", area)));
  return district;
}

function setStatus(text, denied = false) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("denied", denied);
  s.hidden = !text;
}

async function signIn() {
  setStatus("");
  const form = $("#signin");
  form.hidden = false;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("/v1/session", { method: "POST", body: JSON.stringify({ token: $("#token").value }) });
      $("#token").value = "";
      location.reload();
    } catch (e) {
      $("#signin-error").textContent = e.message;
    }
  });
}

function areaLinks(level, area, scope) {
  const box = $("#areas");
  box.textContent = "";
  let items = [];
  if (level === "city") items = state.city.districts.filter((d) => scope.has(d.name)).map((d) => ["district", d.name]);
  if (level === "district") items = state.city.streets.filter((s) => s.district === area && state.streetOk(s.name)).map((s) => ["street", s.name]);
  for (const [lv, name] of items) {
    const a = document.createElement("a");
    a.href = `/cockpit/${lv}/${encodeURIComponent(name)}`;
    a.textContent = areaName(lv, name);
    a.dataset.area = name;
    box.append(a);
  }
  box.hidden = items.length === 0;
}

function card(panel) {
  const el = document.createElement("article");
  el.className = "panel";
  if (panel.kind === "segments") el.classList.add("tall");  // a map is about as tall as wide
  el.dataset.panel = panel.id;
  el.dataset.state = "loading";
  const h = document.createElement("h2");
  h.textContent = state.lang === "zh" && panel.title_zh ? panel.title_zh : panel.title;
  const body = document.createElement("div");
  body.className = "body";
  body.innerHTML = `<p class="note">${t("loading")}</p>`;
  el.append(h, body);
  $("#grid").append(el);
  return el;
}

function note(el, text, cls = "") {
  const body = $(".body", el);
  body.textContent = "";
  const p = document.createElement("p");
  p.className = `note ${cls}`;
  p.textContent = text;
  body.append(p);
}

function chart(el) {
  const body = $(".body", el);
  body.textContent = "";
  const div = document.createElement("div");
  div.className = "chart";
  body.append(div);
  const c = echarts.init(div, "dark", { renderer: "canvas" });
  c.setOption({ animation: false });  // numbers, not motion: a wall screen shows the state
  state.charts.push(c);
  return c;
}

function drawNumber(el, res) {
  const body = $(".body", el);
  body.textContent = "";
  const box = document.createElement("div");
  box.className = "numbers";
  const row = res.rows[0] || [];
  res.columns.forEach((col, i) => {
    const n = document.createElement("div");
    n.className = "number";
    n.innerHTML = `<div class="value"></div><div class="label"></div>`;
    $(".value", n).textContent = fmt(row[i]);
    $(".value", n).dataset.col = col.name;
    $(".value", n).dataset.value = row[i] ?? "";
    $(".label", n).textContent = label(col.name);
    box.append(n);
  });
  // long figures side by side fit one panel only in a smaller type
  if (row.reduce((n, v) => n + String(fmt(v)).length, 0) > 10) box.classList.add("long");
  body.append(box);
}

function drawTable(el, res) {
  const body = $(".body", el);
  body.textContent = "";
  const table = document.createElement("table");
  const head = document.createElement("tr");
  for (const c of res.columns) { const th = document.createElement("th"); th.textContent = label(c.name); head.append(th); }
  table.append(head);
  for (const row of res.rows) {
    const tr = document.createElement("tr");
    row.forEach((v, i) => {
      const td = document.createElement("td");
      const name = res.columns[i].name;
      if (name === "level") { td.className = `level-${v}`; td.textContent = levelName(v); }
      else if (name === "street" || name === "district") td.textContent = anyAreaName(v);
      else if (name === "direction" && DIRECTION_NAMES[v]) td.textContent = DIRECTION_NAMES[v][state.lang === "zh" ? 0 : 1];
      else td.textContent = fmt(v);
      tr.append(td);
    });
    table.append(tr);
  }
  body.append(table);
}

function drawSeries(el, res, kind) {
  const c = el._chart || (el._chart = chart(el));
  const x = res.rows.map((r) => String(r[0]));
  const series = res.columns.slice(1).filter((col) => !["VARCHAR"].includes(col.type)).map((col) => ({
    name: label(col.name), type: kind, smooth: kind === "line",
    data: res.rows.map((r) => Number(r[res.columns.indexOf(col)])),
  }));
  c.setOption({ backgroundColor: "transparent", animation: false, tooltip: { trigger: "axis" },
    legend: { show: series.length > 1, textStyle: { color: "#cfe0f5" } },
    grid: { left: 50, right: 16, top: 24, bottom: 40 },
    xAxis: { type: "category", data: x.map(anyAreaName), axisLabel: { color: "#8fa3bf" } },
    yAxis: { type: "value", axisLabel: { color: "#8fa3bf" } }, series }, true);
}

function drawMap(el, res, level) {
  const c = el._chart || (el._chart = chart(el));
  const child = level === "city" ? "district" : "street";
  const data = res.rows.map((r) => ({ name: r[0], value: Number(r[1]) }));
  const max = Math.max(1, ...data.map((d) => d.value));
  c.setOption({ backgroundColor: "transparent", animation: false,
    tooltip: { formatter: (p) => `${areaName(child, p.name)}: ${fmt(p.value)}` },
    visualMap: { min: 0, max, left: 0, bottom: 0, itemHeight: 80, text: [fmt(max), "0"],
      textStyle: { color: "#cfe0f5" }, inRange: { color: ["#12324f", "#1d6fa5", "#38bdf8", "#e0f2fe"] } },
    series: [{ type: "map", map: child === "district" ? "districts" : "streets", nameProperty: child,
      roam: false, left: 70, right: 4, top: 4, bottom: 4, data, label: { show: true, color: "#e6edf7", textBorderColor: "#0b1220", textBorderWidth: 3,
        formatter: (p) => areaName(child, p.name) },
      itemStyle: { borderColor: "#0b1220" }, emphasis: { label: { color: "#fff" } } }] }, true);
  c.off("click");
  c.on("click", (p) => { if (p.name) location.href = `/cockpit/${child}/${encodeURIComponent(p.name)}`; });
  el.dataset.areas = data.map((d) => d.name).join(" ");
}

function drawSegments(el, res, level) {
  const c = el._chart || (el._chart = chart(el));
  const col = (name) => res.columns.findIndex((x) => x.name === name);
  const lines = res.rows.map((r) => ({
    coords: [[r[col("lon0")], r[col("lat0")]], [r[col("lon1")], r[col("lat1")]]],
    name: r[col("segment_id")], value: r[col("congestion_index")],
    lineStyle: { color: LEVEL_COLORS[r[col("level")]] || "#8fa3bf", width: 3 },
  }));
  c.setOption({ backgroundColor: "transparent", animation: false,
    tooltip: { formatter: (p) => `${p.name}: ${Number(p.value).toFixed(2)}` },
    geo: { map: level === "city" ? "districts" : "streets", roam: true,
      left: 4, right: 4, top: 4, bottom: 4,
      itemStyle: { areaColor: "#0f1a2c", borderColor: "#22324d" }, silent: true },
    series: [{ type: "lines", coordinateSystem: "geo", polyline: false, data: lines }] }, true);
  el.dataset.segments = String(lines.length);
}

/* Exchanges (answered queries) and refusals (4xx other than anonymous 401s) from the
   hub's public counters; per minute from two readings. */
function counters(text) {
  let exchanges = 0, refusals = 0;
  for (const line of text.split("\n")) {
    const m = line.match(/^zhongshu_(queries|requests)_total\{(.*)\} (\d+(\.\d+)?)$/);
    if (!m) continue;
    if (m[1] === "queries" && m[2].includes('outcome="ok"')) exchanges += Number(m[3]);
    const st = m[2].match(/status="(\d+)"/);
    if (m[1] === "requests" && st && st[1].startsWith("4") && st[1] !== "401") refusals += Number(m[3]);
  }
  return { exchanges, refusals, at: Date.now() };
}

async function drawHub(el) {
  const [health, cp, metrics] = await Promise.all([api("/v1/health"),
    api("/v1/ledger/checkpoint?format=json").catch(() => null),
    fetch("/metrics").then((r) => r.text()).catch(() => "")]);
  const now = counters(metrics);
  const before = el._counters;
  el._counters = now;
  const rate = (k) => (before ? Math.round(((now[k] - before[k]) * 60000) / Math.max(1, now.at - before.at)) : null);
  const sum = health.summary;
  const body = $(".body", el);
  body.textContent = "";
  const dl = document.createElement("dl");
  dl.className = "hub";
  const add = (k, v) => { const dt = document.createElement("dt"); dt.textContent = k; const dd = document.createElement("dd"); dd.textContent = v; dl.append(dt, dd); };
  add(t("exchanges"), `${fmt(now.exchanges)}${rate("exchanges") === null ? "" : ` · ${fmt(rate("exchanges"))}${t("perMinute")}`}`);
  add(t("refusals"), `${fmt(now.refusals)}${rate("refusals") === null ? "" : ` · ${fmt(rate("refusals"))}${t("perMinute")}`}`);
  add(t("sources"), `${sum.sources_up} ${t("up")} · ${sum.sources_down} ${t("down")}`);
  if (health.status !== "ok") add(t("degraded"), sum.lost.join(", "));
  if (cp) {
    add(t("checkpoint"), `${fmt(cp.size)} ${t("entries")} · ${cp.root.slice(0, 12)}…`);
    if (!cp.quorum) add(t("witnesses"), t("noWitness"));
    else add(t("witnesses"), `${(cp.cosigned_by || []).join(", ") || t("waiting")} (${(cp.cosigned_by || []).length}/${cp.quorum})${cp.final ? " · " + t("final") : ""}`);
  }
  body.append(dl);
  el.dataset.sources = String(sum.sources_up + sum.sources_down);
}

function draw(el, panel, res, level) {
  el.dataset.state = "ready";
  window.__zs.results[panel.id] = res;
  settled(panel.id);
  el.dataset.rows = String(res.rows.length);
  delete state.downSince[panel.id];
  if (res.rows.length === 0 && panel.kind !== "number") { el._chart = null; note(el, t("noData")); return; }
  if (panel.kind === "number") drawNumber(el, res);
  else if (panel.kind === "table") drawTable(el, res);
  else if (panel.kind === "map") drawMap(el, res, level);
  else if (panel.kind === "segments") drawSegments(el, res, level);
  else drawSeries(el, res, panel.kind);
}

function failed(el, panel, e) {
  el.dataset.state = "error";
  settled(panel.id);
  el._chart = null;
  if (e.code === "source_unavailable" || e.code === "dataset_unavailable") {
    const since = state.downSince[panel.id] || (state.downSince[panel.id] = new Date());
    note(el, t("sourceDown") + since.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }), "down");
  } else if (e.code === "dataset_not_found" && panel.live) {
    note(el, t("noLive"));
  } else {
    note(el, t("error") + e.message, "down");
  }
}

async function load(el, panel, level) {
  if (panel.kind === "hub") {
    try { await drawHub(el); el.dataset.state = "ready"; settled(panel.id); } catch (e) { failed(el, panel, e); }
    if (panel.refresh_s) setTimeout(() => load(el, panel, level), panel.refresh_s * 1000);
    return;
  }
  try {
    draw(el, panel, await query(panel.sql), level);
  } catch (e) {
    failed(el, panel, e);
    if (e.code === "source_unavailable" || e.code === "dataset_unavailable") {
      setTimeout(() => load(el, panel, level), 30_000);
    }
    return;
  }
  if (panel.live && !el._live) subscribe(el, panel, level);
}

/* Live panels: the hub pushes changed rows of the panel's own query; a number panel takes
   them as they come, other panels re-ask once something changed. */
function subscribe(el, panel, level) {
  const url = `/v1/subscribe?${new URLSearchParams({ sql: panel.trigger || panel.sql, purpose: state.purpose,
    interval_s: String(Math.max(1, panel.refresh_s || 5)) })}`;
  const es = new EventSource(url);
  el._live = es;
  state.streams.push(es);
  let pending = null;
  es.addEventListener("rows", (ev) => {
    const res = JSON.parse(ev.data);
    if (!panel.trigger && panel.kind === "number" && res.rows.length) { draw(el, panel, res, level); return; }
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      try { draw(el, panel, await query(panel.sql), level); } catch (e) { failed(el, panel, e); }
    }, 200);
  });
  es.addEventListener("error", (ev) => {
    if (ev.data) { try { failed(el, panel, Object.assign(new Error(""), JSON.parse(ev.data))); } catch (_) { /* keep */ } }
  });
}

async function main() {
  document.body.classList.toggle("en", state.lang === "en");
  $("#lang").textContent = state.lang === "zh" ? "EN" : "中文";
  $("#lang").addEventListener("click", () => {
    localStorage.setItem("zs-lang", state.lang === "zh" ? "en" : "zh");
    location.reload();
  });
  setStatus(t("connecting"));
  let me;
  try { me = await api("/v1/session"); } catch (e) {
    if (e.status === 401) return signIn();
    return setStatus(t("error") + e.message, true);
  }
  $("#viewer").textContent = me.title ? `${me.title} (${me.member})` : me.member;
  $("#signout").hidden = false;
  $("#signout").addEventListener("click", async () => { await api("/v1/session", { method: "DELETE" }); location.href = "/cockpit/"; });
  const { level, area } = route();
  const [city, grants, catalog] = await Promise.all([api("/cockpit/city.json"), api("/v1/grants"), api("/v1/catalog")]);
  state.city = city;
  const purposes = grants.received.flatMap((g) => g.purposes);
  state.purpose = purposes.find((p) => p.endsWith("-operations")) || purposes[0];
  if (!state.purpose) { setStatus(t("notPermitted"), true); return; }
  const district = crumbs(level, area);
  if (!["city", "district", "street"].includes(level) || (level !== "city" && !district)) {
    setStatus(t("noArea"), true);
    return;
  }
  // the areas this viewer may see, as the hub says of its grants for this purpose (each
  // grant's `areas`: those whose rows its row scope lets through, null for any); its own
  // datasets it reads whole
  const used = grants.received.filter((g) => g.purposes.includes(state.purpose));
  const everywhere = catalog.some((d) => d.owner === me.member) || used.some((g) => g.areas === null);
  const named = new Set(used.flatMap((g) => g.areas || []));
  const streetOf = new Map(city.streets.map((s) => [s.name, s.district]));
  const districtOk = (d) => everywhere || named.has(d) || [...named].some((a) => streetOf.get(a) === d);
  const streetOk = (s) => everywhere || named.has(s) || named.has(streetOf.get(s));
  state.streetOk = streetOk;
  const scope = new Set(city.districts.map((d) => d.name).filter(districtOk));
  document.body.dataset.scope = [...scope].join(" ");
  const allDistricts = city.districts.every((d) => scope.has(d.name));
  if ((level === "city" && !allDistricts) || (district && !scope.has(district))
      || (level === "street" && !streetOk(area))) {
    if (level === "city" && scope.size === 1) { location.replace(`/cockpit/district/${encodeURIComponent([...scope][0])}`); return; }
    setStatus(t("notPermitted"), true);
    document.body.dataset.denied = "true";
    areaLinks("city", null, scope);
    return;
  }
  const access = new Map(catalog.map((d) => [d.name, d.access]));
  const bound = await api(`/cockpit/panels.json?${new URLSearchParams(area ? { level, area } : { level })}`);
  // the hub serves the panels of this city's datasets; shown are those the viewer may read
  const panels = bound.panels.filter((p) => p.datasets.every((d) => (access.get(d) || "none") !== "none"));
  setStatus("");
  areaLinks(level, area, scope);
  await Promise.all([
    level === "city" ? fetch("/cockpit/geo/districts.geojson").then((r) => r.json()).then((g) => echarts.registerMap("districts", g)) : null,
    fetch("/cockpit/geo/streets.geojson").then((r) => r.json()).then((g) => {
      if (level !== "city") g.features = g.features.filter((f) => f.properties.district === district && (level !== "street" || f.properties.street === area));
      echarts.registerMap("streets", g);
    }),
  ]);
  window.__zs.expected = panels.length;
  for (const p of panels) load(card(p), p, level);
  window.addEventListener("resize", () => state.charts.forEach((c) => c.resize()));
}

main().catch((e) => setStatus(t("error") + e.message, true));
