// 我的数据谁用了: a person's own page. Reads /v1/me/usage and /v1/me/consents with the ID
// token pasted (kept in memory only), and checks every inclusion proof here (RFC 9162,
// SHA-256 with WebCrypto) against the root of the signed checkpoint the hub sent.
"use strict";
let token = null;
const $ = (id) => document.getElementById(id);

async function call(method, path, body) {
  const r = await fetch(path, {method, headers: {"Authorization": `Bearer ${token}`,
    ...(body ? {"Content-Type": "application/json"} : {})},
    body: body ? JSON.stringify(body) : undefined});
  const data = await r.json();
  if (!r.ok) throw new Error(data.error ? `${data.error.code}: ${data.error.message}` : r.status);
  return data;
}

async function sha256(bytes) { return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)); }
const cat = (...parts) => { const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0; for (const p of parts) { out.set(p, i); i += p.length; } return out; };
const hex = (s) => Uint8Array.from(s.match(/../g).map((b) => parseInt(b, 16)));

async function rootFrom(index, size, leaf, path) {   // RFC 9162, 2.1.3.2
  let fn = index, sn = size - 1, r = leaf;
  for (const p of path) {
    if (sn === 0) return null;
    if ((fn & 1) || fn === sn) {
      r = await sha256(cat([1], p, r));
      while (!(fn & 1) && fn !== 0) { fn >>= 1; sn >>= 1; }
    } else { r = await sha256(cat([1], r, p)); }
    fn >>= 1; sn >>= 1;
  }
  return sn === 0 ? r : null;
}

function cell(row, text) { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); }

async function show() {
  $("status").textContent = "…";
  const consents = await call("GET", "/v1/me/consents");
  const cbody = $("consents").querySelector("tbody"); cbody.replaceChildren();
  for (const c of consents.consents) {
    const tr = document.createElement("tr");
    cell(tr, c.scenario); cell(tr, c.service); cell(tr, c.until);
    const b = document.createElement("button"); b.textContent = "Withdraw · 撤回";
    b.onclick = async () => { await call("DELETE", `/v1/me/consents/${c.consent}`); show(); };
    const td = document.createElement("td"); td.appendChild(b); tr.appendChild(td);
    cbody.appendChild(tr);
  }
  const ubody = $("usage").querySelector("tbody"); ubody.replaceChildren();
  let after = -1, shown = 0, good = 0;
  for (;;) {
    const page = await call("GET", `/v1/me/usage?after=${after}&limit=500`);
    const lines = page.checkpoint.split("\n");
    const size = Number(lines[1]);
    const root = Uint8Array.from(atob(lines[2]), (c) => c.charCodeAt(0));
    const ex = page.exclusions.declared.map((x) => `${x.member} (${x.purpose}): ${x.reason}`);
    $("exclusions").textContent = ex.length ? `Not listed one by one: ${ex.join("; ")}` : "";
    for (const e of page.entries) {
      const leaf = await sha256(cat([0], new TextEncoder().encode(e.canonical)));
      const r = await rootFrom(e.index, size, leaf, e.proof.map(hex));
      const ok = r !== null && r.every((b, i) => b === root[i]);
      const f = e.entry, tr = document.createElement("tr");
      cell(tr, e.index); cell(tr, f.time); cell(tr, f.caller); cell(tr, f.on_behalf_of || "");
      cell(tr, (f.datasets || []).join(", ")); cell(tr, f.purpose || f.action || "");
      cell(tr, f.outcome); cell(tr, ok ? "✓" : "✗");
      ubody.appendChild(tr); shown++; if (ok) good++;
    }
    if (page.next === null) break;
    after = page.next;
  }
  $("status").textContent = `${shown} uses, ${good} proofs verified against checkpoint`;
}

if (typeof module !== "undefined") module.exports = {rootFrom, sha256, cat, hex};  // tests
if (typeof document !== "undefined") {
$("signin").addEventListener("submit", (ev) => {
  ev.preventDefault(); token = $("token").value.trim(); $("token").value = "";
  show().catch((e) => { $("status").textContent = e.message; });
});
$("give").addEventListener("submit", (ev) => {
  ev.preventDefault();
  call("POST", "/v1/me/consents", {scenario: $("scenario").value, service: $("service").value})
    .then(show).catch((e) => { $("status").textContent = e.message; });
});
}
