"use strict";
// The mapping editor page. Holds the admin's edits; the server applies them to the YAML,
// validates them with the CLI's validator and previews the tiers (POST /api/check).
const TOKEN = document.querySelector('meta[name="icp-token"]').content;
let edits = [];
let model = null;
let errors = [];
let timer = null;
let seq = 0;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "style") node.style.cssText = v; // CSSOM: allowed by the page's CSP
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c.nodeType ? c : String(c));
  return node;
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-ICP-Token": TOKEN },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
  return response.json();
}

function sameTarget(a, b) {
  return a.op === b.op && a.kind === b.kind && a.name === b.name && a.group === b.group &&
    a.index === b.index && (a.op !== "value" || a.value === b.value);
}

function addEdit(edit) {
  const full = Object.assign({ kind: "account", name: "", canonical: "", group: "", index: 0 }, edit);
  edits = edits.filter((e) => !sameTarget(e, full));
  edits.push(full);
  schedule(0);
}

function schedule(delay) {
  clearTimeout(timer);
  timer = setTimeout(check, delay);
}

async function check() {
  const mine = ++seq;
  setStatus("Checking…", "");
  let result;
  try {
    result = await post("/api/check", { edits });
  } catch (e) {
    setStatus(`The editor is not answering (${e.message}). Is icp mappings edit still running?`, "bad");
    return;
  }
  if (mine !== seq) return; // a newer check is on its way
  model = result.model;
  errors = result.errors;
  render(result);
}

function setStatus(text, kind) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = "status " + kind;
}

function pct(x) { return x === null || x === undefined ? "" : `${Math.round(x * 100)}%`; }

function fillBar(x) {
  if (x === null || x === undefined) return el("span", { class: "tag", text: "metadata" });
  return el("span", {}, el("span", { class: "fill" }, el("i", { style: `width:${Math.round(x * 100)}%` })), pct(x));
}

function columnsOf(kind) {
  const map = {};
  for (const c of model.columns[kind]) map[c.name] = c;
  return map;
}

function renderFields() {
  const root = document.getElementById("fields");
  root.replaceChildren();
  for (const kind of ["account", "opportunity"]) {
    const cols = columnsOf(kind);
    const names = Object.keys(cols).sort((a, b) => a.localeCompare(b));
    const table = el("table", {}, el("tr", {}, el("th", { text: "Canonical field" }), el("th", { text: "Type" }),
      el("th", { text: "CRM field" }), el("th", { text: "Its type" }), el("th", { text: "Filled" })));
    for (const f of model.canonical[kind]) {
      const col = f.field ? cols[f.field] : null;
      const missing = f.field && !col && !f.field.includes(".") && names.length > 0;
      const hurts = missing && errors.some((m) => m.includes(`objects.${kind}.fields.${f.name}:`));
      const select = el("select", { "data-field": `${kind}.${f.name}`, "aria-label": `CRM field for ${f.name}`,
        class: hurts ? "invalid" : missing ? "doubtful" : null,
        onchange: (e) => addEdit({ op: "field", kind, name: f.name, value: e.target.value }) },
        el("option", { value: "", text: f.core ? "— not mapped —" : "— remove —" }));
      if (missing) select.append(el("option", { value: f.field, text: `${f.field} (not in the CRM)` }));
      for (const n of names) {
        const c = cols[n];
        const label = c.label && c.label !== n ? `${n} — ${c.label}` : n;
        select.append(el("option", { value: n, text: `${label} · ${c.type}${c.fill !== null ? " · " + pct(c.fill) : ""}` }));
      }
      select.value = f.field || "";
      table.append(el("tr", { class: hurts ? "missing" : missing ? "absent" : null },
        el("td", {}, el("code", { text: f.name }), f.core ? null : " ", f.core ? null : el("span", { class: "tag", text: "extra" })),
        el("td", {}, el("span", { class: "tag", text: f.type })),
        el("td", {}, select),
        el("td", { text: col ? col.type : "" }),
        el("td", {}, col ? fillBar(col.fill) : "")));
    }
    root.append(el("h3", { text: kind === "account" ? "Account" : "Opportunity" }), table);
  }
}

function lookupOf(values) {
  const table = {};
  const norm = (s) => String(s).trim().split(/\s+/).join(" ").toLowerCase();
  for (const [canonical, spellings] of Object.entries(values)) {
    table[norm(canonical)] = canonical;
    for (const s of spellings) table[norm(s)] = canonical;
  }
  return (v) => table[norm(v)];
}

function renderValues() {
  const root = document.getElementById("values");
  root.replaceChildren();
  let shown = 0;
  for (const kind of ["account", "opportunity"]) {
    const cols = columnsOf(kind);
    for (const f of model.canonical[kind]) {
      const col = f.field ? cols[f.field] : null;
      if (!col || !col.values.length || (f.type !== "text" && f.type !== "multi")) continue;
      if (!Object.keys(f.values).length && col.values.length > 40) continue;
      const find = lookupOf(f.values);
      const canonicals = Object.keys(f.values);
      const unmapped = col.values.filter(([v]) => !find(v)).length;
      const options = el("datalist", { id: `means-${kind}-${f.name}` }, canonicals.map((c) => el("option", { value: c })));
      const table = el("table", {}, el("tr", {}, el("th", { text: `Value in ${f.field}` }), el("th", { class: "num", text: "Records" }), el("th", { text: "Means" })));
      for (const [value, count] of col.values) {
        const target = find(value);
        const listId = `means-${kind}-${f.name}`;
        const mapper = (initial) => {
          const pick = el("input", { class: "map-target", list: listId, placeholder: "canonical value…", "aria-label": `meaning of ${value}`,
            onkeydown: (e) => { if (e.key === "Enter") button.click(); } });
          pick.value = initial;
          const button = el("button", { type: "button", class: "small map-btn", onclick: () => {
            if (!pick.value.trim()) { pick.focus(); return; }
            addEdit({ op: "value", kind, name: f.name, canonical: pick.value.trim(), value });
          } }, "Map");
          return el("span", {}, pick, " ", button);
        };
        let cell;
        if (target) {
          const shown = el("span", { class: "maps-to", text: target === value ? "✓ as is" : `→ ${target}` });
          const change = el("button", { type: "button", class: "link change-btn", title: "map this value to something else", onclick: () => {
            cell.replaceChildren(mapper(""));
            cell.querySelector("input").focus();
          } }, "change");
          cell = el("span", {}, shown, " ", change);
        } else {
          const hint = (model.suggestions || []).find((s) => s.edit.op === "value" && s.edit.kind === kind && s.edit.name === f.name && s.edit.value === value);
          cell = mapper(hint ? hint.edit.canonical : "");
        }
        table.append(el("tr", { class: target ? null : "unmapped", "data-value": `${kind}.${f.name}::${value}` },
          el("td", {}, el("code", { text: value })), el("td", { class: "num", text: count || "" }), el("td", {}, cell)));
      }
      const summary = el("summary", {}, el("code", { text: f.name }), ` ← ${f.field}: ${col.values.length} values`,
        unmapped ? el("span", { class: "unmapped-chip", text: ` ${unmapped} not mapped` }) : " all mapped");
      root.append(el("details", { class: "valuefield", open: unmapped ? true : null, "data-values": `${kind}.${f.name}` }, summary, options, table));
      shown++;
    }
  }
  if (!shown) root.append(el("p", { class: "hint", text: "No text field with a manageable number of values." }));
}

function renderCriteria() {
  const root = document.getElementById("criteria");
  root.replaceChildren();
  const bad = (key) => errors.some((m) => m.includes(`: ${key}:`));
  const table = el("table", {}, el("tr", {}, el("th", { text: "Group" }), el("th", { text: "Criterion" }), el("th", { text: "Condition" }), el("th", { class: "num", text: "Weight" }), el("th", { class: "num", text: "Points" })));
  const weightOf = (c) => {
    const pending = edits.find((e) => e.op === "weight" && e.group === c.group && e.index === c.index);
    return Number(pending ? pending.value : c.weight);
  };
  const total = model.criteria.reduce((sum, c) => sum + (weightOf(c) > 0 ? weightOf(c) : 0), 0);
  for (const c of model.criteria) {
    const key = `criteria.${c.group}.${c.index}.weight`;
    const pending = edits.find((e) => e.op === "weight" && e.group === c.group && e.index === c.index);
    const input = el("input", { class: "weight" + (bad(key) ? " invalid" : ""), "data-weight": `${c.group}.${c.index}`, "aria-label": `weight of ${c.name}`,
      value: pending ? pending.value : (c.weight ?? ""),
      oninput: (e) => { edits = edits.filter((x) => !(x.op === "weight" && x.group === c.group && x.index === c.index)); edits.push({ op: "weight", kind: "account", name: "", canonical: "", group: c.group, index: c.index, value: e.target.value }); schedule(300); } });
    const w = weightOf(c);
    const points = total > 0 && w > 0 ? `${Math.round((1000 * w) / total) / 10}` : "";
    table.append(el("tr", {}, el("td", {}, el("span", { class: "tag", text: c.group.replace("_", " ") })), el("td", { text: c.name }), el("td", {}, el("code", { text: c.condition })), el("td", { class: "num" }, input), el("td", { class: "num points", text: points })));
  }
  const tiers = el("table", {}, el("tr", {}, el("th", { text: "Tier" }), el("th", { class: "num", text: "Lowest score" })));
  for (const t of model.tiers) {
    const pending = edits.find((e) => e.op === "tier" && e.name === t.name);
    tiers.append(el("tr", {}, el("td", { text: t.name }), el("td", { class: "num" }, el("input", { class: "weight" + (bad(`tiers.${t.name}`) ? " invalid" : ""), "data-tier": t.name, "aria-label": `lowest score of tier ${t.name}`,
      value: pending ? pending.value : t.threshold,
      oninput: (e) => { edits = edits.filter((x) => !(x.op === "tier" && x.name === t.name)); edits.push({ op: "tier", kind: "account", name: t.name, canonical: "", group: "", index: 0, value: e.target.value }); schedule(300); } }))));
  }
  root.append(table, el("h3", { text: "Tiers" }), tiers);
}

function renderOutputs() {
  const root = document.getElementById("outputs");
  root.replaceChildren();
  const table = el("table", {}, el("tr", {}, el("th", { text: "Output" }), el("th", { text: "CRM field" }), el("th", { text: "Type" }), el("th", { text: "Write policy" })));
  const labels = { overwrite: "overwrite: always replace", if_unchanged: "if_unchanged: keep a person's edit", if_empty: "if_empty: only fill empty fields" };
  for (const o of model.outputs) {
    const select = el("select", { "data-policy": o.key, "aria-label": `write policy of ${o.key}`, onchange: (e) => addEdit({ op: "policy", name: o.key, value: e.target.value }) },
      Object.entries(labels).map(([v, t]) => el("option", { value: v, text: t })));
    select.value = o.policy;
    table.append(el("tr", {}, el("td", {}, el("code", { text: o.key })), el("td", {}, el("code", { text: o.field || "" })), el("td", { text: o.type }), el("td", {}, select)));
  }
  root.append(table);
}

function renderSuggestions() {
  const list = document.getElementById("suggestions");
  list.replaceChildren();
  const fieldOnes = (model.suggestions || []).filter((s) => s.edit.op === "field");
  document.getElementById("suggestions-section").hidden = !model.suggestions.length;
  for (const s of model.suggestions) {
    list.append(el("li", {}, el("span", { text: s.why }), el("button", { type: "button", class: "small", onclick: () => addEdit(s.edit) }, "Apply")));
  }
  if (model.suggestions.length > 1) {
    list.append(el("li", {}, el("span", { text: `${model.suggestions.length} suggestions (${fieldOnes.length} fields)` }),
      el("button", { type: "button", class: "small", onclick: () => { for (const s of model.suggestions) addEdit(s.edit); } }, "Apply all")));
  }
}

function renderProblems(result) {
  const root = document.getElementById("problems");
  root.replaceChildren();
  for (const m of result.errors) root.append(el("div", { class: "problem error", text: m }));
  for (const m of result.warnings) root.append(el("div", { class: "problem warning", text: m }));
  if (!result.errors.length && !result.warnings.length) root.append(el("div", { class: "none", text: "✓ No problems: the same check as icp mappings validate." }));
}

function renderPreview(p) {
  const root = document.getElementById("preview");
  root.replaceChildren();
  if (!p) {
    root.append(el("p", { class: "hint", text: model && model.has_rows ? "Fix the errors to see the preview." : "No data to score: start the editor with --source DIR (an export) to preview tiers." }));
    return;
  }
  root.append(el("div", { id: "changed" }, el("span", { class: "big", text: p.changed_tier }), ` of ${p.accounts} accounts change tier`,
    el("div", { class: "hint", text: `${p.changed_score} change score` })));
  const table = el("table", {}, el("tr", {}, el("th", { text: "Tier" }), el("th", { class: "num", text: "Saved" }), el("th", { class: "num", text: "With changes" }), el("th", { class: "num", text: "Δ" })));
  for (const t of p.tiers) {
    const d = t.before === null ? "" : t.after - t.before;
    table.append(el("tr", {}, el("td", { text: t.tier }), el("td", { class: "num", text: t.before ?? "—" }), el("td", { class: "num", text: t.after }),
      el("td", { class: "num " + (d > 0 ? "up" : d < 0 ? "down" : ""), text: d === "" || d === 0 ? "" : (d > 0 ? "+" : "") + d })));
  }
  root.append(table, el("h3", { text: p.samples_changed ? "Accounts that change tier" : "Top accounts" }));
  for (const s of p.samples) {
    const move = s.tier_before && s.tier_before !== s.tier_after ? `${s.tier_before} → ${s.tier_after}` : s.tier_after;
    root.append(el("div", { class: "sample" }, el("strong", { text: s.name }), ` · ${move} · ${s.score_after}`,
      el("div", { class: "reasons", text: s.reasons || "no criterion matched" })));
  }
}

function render(result) {
  const active = document.activeElement;
  const key = active && ["data-weight", "data-tier"].map((a) => active.getAttribute(a) && `[${a}="${active.getAttribute(a)}"]`).find(Boolean);
  const caret = key ? active.selectionStart : null;
  document.getElementById("files").replaceChildren(el("code", { text: model.files.mapping }), " + ", el("code", { text: model.files.icp }), ` · ${model.crm} · fields from ${model.origin}`);
  const notice = document.getElementById("notice");
  notice.textContent = model.notice || "";
  notice.hidden = !model.notice;
  renderSuggestions();
  renderFields();
  renderValues();
  renderCriteria();
  renderOutputs();
  renderProblems(result);
  renderPreview(result.preview);
  const diff = document.getElementById("diff");
  diff.textContent = result.diff;
  document.getElementById("diff-section").hidden = !result.diff;
  const n = edits.length;
  document.getElementById("pending").textContent = n ? `${n} unsaved change${n > 1 ? "s" : ""}` : "";
  document.getElementById("save").disabled = !result.diff || result.errors.length > 0;
  document.getElementById("discard").disabled = !n;
  if (result.errors.length) setStatus(`${result.errors.length} error${result.errors.length > 1 ? "s" : ""}: fix ${result.errors.length > 1 ? "them" : "it"} to save`, "bad");
  else if (result.warnings.length) setStatus(`Valid, with ${result.warnings.length} warning${result.warnings.length > 1 ? "s" : ""}${n ? "" : " · no unsaved changes"}`, "warn");
  else setStatus(n ? "Valid · ready to save" : "Valid · no unsaved changes", "");
  if (key) {
    const again = document.querySelector(key);
    if (again) { again.focus(); if (caret !== null) again.setSelectionRange(caret, caret); }
  }
}

document.getElementById("save").addEventListener("click", async () => {
  const result = await post("/api/save", { edits });
  if (!result.saved) { setStatus(`Not saved: ${result.errors[0]}`, "bad"); return; }
  edits = [];
  await check();
  setStatus(`Saved ${result.written.join(", ")}`, "");
});
document.getElementById("discard").addEventListener("click", () => { edits = []; schedule(0); });
window.addEventListener("beforeunload", (e) => { if (edits.length) e.preventDefault(); });
check();
