// The segment builder: the rule as a form of blocks and as YAML, kept in sync through the console
// (which owns YAML and the check), with the sizes of the whole rule and of each top-level block
// recounted 400 ms after the last edit. Nothing here is trusted: the server checks every rule.
"use strict";
(function () {
  const root = document.getElementById("builder");
  if (!root) return;
  const data = JSON.parse(document.getElementById("builder-data").textContent);
  const vocab = data.vocabulary;
  const segment = root.dataset.segment;
  const blocksEl = document.getElementById("blocks");
  const kindEl = document.getElementById("rule-kind");
  const yamlEl = document.getElementById("rule-text");
  let seq = 0;

  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => (k === "class" ? (node.className = v) : node.setAttribute(k, v)));
    children.forEach((c) => node.append(c));
    return node;
  };
  const select = (name, options, value) => {
    const s = el("select", { "data-field": name, "aria-label": name });
    options.forEach((o) => s.append(el("option", { value: o }, o)));
    s.value = value === undefined || value === null ? options[0] || "" : String(value);
    return s;
  };
  const input = (name, value, placeholder) => {
    const i = el("input", { "data-field": name, "aria-label": name, placeholder: placeholder || name });
    i.value = value === undefined || value === null ? "" : Array.isArray(value) ? value.join(", ") : String(value);
    return i;
  };
  const scalar = (s) => {
    const t = s.trim();
    if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
    if (t === "true" || t === "false") return t === "true";
    return t;
  };
  const operand = (op, text) => {
    if (op === "in" || op === "not_in") return text.split(",").map(scalar).filter((v) => v !== "");
    if (op === "between") return text.split(",").map(scalar).slice(0, 2);
    if (op === "exists" || op === "is_null") return true;
    return scalar(text);
  };
  const opOf = (obj, ops) => ops.find((o) => o in obj);

  // ---- one block: its kind, read from a rule and written back
  function kindOf(rule) {
    if (rule && typeof rule === "object" && !Array.isArray(rule)) {
      const keys = Object.keys(rule);
      if ("attribute" in rule && keys.length === 2 && opOf(rule, vocab.attribute_ops)) return "attribute";
      if ("event" in rule && keys.every((k) => ["event", "count", "within_last", "more_than_ago", "sum", "where"].includes(k))) return "event";
      if (keys.length === 1 && ["segment", "in_list", "app"].includes(keys[0])) return keys[0];
    }
    return "raw";
  }
  function row(...children) { return el("div", { class: "row" }, ...children); }
  function filterRow(f) {
    const op = opOf(f, vocab.attribute_ops) || "eq";
    const r = row(select("property", vocab.properties, f.property), select("op", vocab.attribute_ops, op), input("value", f[op]));
    r.dataset.part = "where";
    const drop = el("button", { type: "button", class: "link" }, "remove");
    drop.onclick = () => { r.remove(); changed(); };
    r.append(drop);
    return r;
  }
  function blockEl(rule, kind) {
    kind = kind || kindOf(rule);
    const li = el("li", { class: "block", "data-kind": kind });
    li.append(el("span", { class: "size", "data-size": "" }, ""), el("b", {}, kind === "raw" ? "other" : kind.replace("_", " ")));
    const r = rule || {};
    if (kind === "attribute") {
      const op = opOf(r, vocab.attribute_ops) || "eq";
      li.append(row(select("attribute", vocab.attributes, r.attribute), select("op", vocab.attribute_ops, op), input("value", r[op])));
    } else if (kind === "event") {
      const count = r.count || {};
      const cop = opOf(count, vocab.count_ops) || "gte";
      const win = "within_last" in r ? "within_last" : "more_than_ago" in r ? "more_than_ago" : "any time";
      const sum = r.sum || null;
      const sop = sum ? opOf(sum, vocab.count_ops) || "gt" : "gt";
      li.append(
        row(input("event", r.event || "purchase", "event")),
        row(el("span", {}, "count"), select("count_op", vocab.count_ops, cop), input("count", r.count ? count[cop] : 1, "times")),
        row(select("window", ["any time", "within_last", "more_than_ago"], win), input("window_value", r[win] || "", "e.g. 30d")),
        row(el("span", {}, "sum of"), select("sum_property", ["(none)"].concat(vocab.properties), sum ? sum.property : "(none)"),
          select("sum_op", vocab.count_ops, sop), input("sum_value", sum ? sum[sop] : "", "amount")),
      );
      const where = el("div", { "data-where": "" });
      (r.where || []).forEach((f) => where.append(filterRow(f)));
      const add = el("button", { type: "button", class: "link add-filter" }, "+ property filter");
      add.onclick = () => { where.append(filterRow({ property: vocab.properties[0], eq: "" })); changed(); };
      li.append(where, add);
      li.querySelector("[data-field=event]").setAttribute("list", "known-events");
    } else if (kind === "segment") {
      li.append(row(select("segment", vocab.segments, r.segment)));
    } else if (kind === "in_list") {
      li.append(row(select("in_list", vocab.lists.length ? vocab.lists : [""], r.in_list)));
    } else if (kind === "app") {
      const app = r.app || {};
      const platforms = [].concat(app.platform || []);
      const boxes = vocab.platforms.map((p) => {
        const box = el("input", { type: "checkbox", "data-platform": p, "aria-label": p });
        box.checked = platforms.includes(p);
        return el("label", { class: "inline" }, box, " " + p);
      });
      const token = "push_token" in app ? String(app.push_token) : "any";
      li.append(row(...boxes, el("span", {}, "push token"), select("push_token", ["any", "true", "false"], token)));
    } else {
      const area = el("textarea", { "data-field": "raw", rows: "4", "aria-label": "block as JSON" });
      area.value = JSON.stringify(rule === undefined ? {} : rule);
      li.append(el("div", { class: "note" }, "As JSON (which is YAML too):"), area);
    }
    const drop = el("button", { type: "button", class: "link" }, "remove block");
    drop.onclick = () => { li.remove(); changed(); };
    li.append(row(drop), el("div", { "data-problems": "" }));
    return li;
  }
  function blockRule(li) {
    const f = (name) => li.querySelector(`[data-field=${name}]`);
    const kind = li.dataset.kind;
    if (kind === "attribute") {
      const op = f("op").value;
      return { attribute: f("attribute").value, [op]: operand(op, f("value").value) };
    }
    if (kind === "event") {
      const out = { event: f("event").value.trim() };
      const cop = f("count_op").value, count = f("count").value.trim();
      if (count !== "" && !(cop === "gte" && count === "1")) out.count = { [cop]: operand(cop, count) };
      if (f("window").value !== "any time" && f("window_value").value.trim()) out[f("window").value] = f("window_value").value.trim();
      if (f("sum_property").value !== "(none)") out.sum = { property: f("sum_property").value, [f("sum_op").value]: operand(f("sum_op").value, f("sum_value").value) };
      const where = [...li.querySelectorAll("[data-part=where]")].map((r) => {
        const op = r.querySelector("[data-field=op]").value;
        return { property: r.querySelector("[data-field=property]").value, [op]: operand(op, r.querySelector("[data-field=value]").value) };
      });
      if (where.length) out.where = where;
      return out;
    }
    if (kind === "segment") return { segment: f("segment").value };
    if (kind === "in_list") return { in_list: f("in_list").value };
    if (kind === "app") {
      const app = {};
      const platforms = [...li.querySelectorAll("[data-platform]")].filter((b) => b.checked).map((b) => b.dataset.platform);
      if (platforms.length) app.platform = platforms.length === 1 ? platforms[0] : platforms;
      if (f("push_token").value !== "any") app.push_token = f("push_token").value === "true";
      return { app };
    }
    try { return JSON.parse(f("raw").value); } catch (e) { return f("raw").value; }
  }

  // ---- the whole rule
  function formRule() {
    const blocks = [...blocksEl.children].map(blockRule);
    const kind = kindEl.value;
    if (kind === "all" || kind === "any") return { [kind]: blocks };
    if (kind === "not") return { not: blocks[0] || {} };
    return blocks[0] || {};
  }
  function showRule(rule) {
    let kind = "one", blocks = [rule];
    if (rule && typeof rule === "object" && !Array.isArray(rule) && Object.keys(rule).length === 1) {
      const key = Object.keys(rule)[0];
      if ((key === "all" || key === "any") && Array.isArray(rule[key])) { kind = key; blocks = rule[key]; }
      else if (key === "not") { kind = "not"; blocks = [rule.not]; }
    }
    kindEl.value = kind;
    blocksEl.replaceChildren(...blocks.map((b) => blockEl(b)));
  }
  function showProblems(problems) {
    const box = document.getElementById("live-problems");
    box.replaceChildren();
    blocksEl.querySelectorAll("[data-problems]").forEach((p) => p.replaceChildren());
    blocksEl.querySelectorAll(".block").forEach((b) => b.removeAttribute("aria-invalid"));
    yamlEl.toggleAttribute("aria-invalid", problems.length > 0);
    if (problems.length) {
      yamlEl.setAttribute("aria-invalid", "true");
      yamlEl.setAttribute("aria-describedby", "problems");
      box.append(el("ul", { class: "problems", id: "problems", role: "alert" }, ...problems.map((p) => el("li", {}, p.message))));
    }
    problems.forEach((p) => {
      const li = p.block === null ? null : blocksEl.children[p.block];
      if (li) {
        li.setAttribute("aria-invalid", "true");
        li.querySelector("[data-problems]").append(el("ul", { class: "problems", role: "alert" }, el("li", {}, p.message)));
      }
    });
  }
  function showSizes(sizes) {
    if (sizes.total >= 0) {
      const total = document.getElementById("size-total");
      total.textContent = sizes.total.toLocaleString("en");
      total.dataset.state = "counted";
      total.dataset.value = String(sizes.total);
      document.getElementById("sample-ids").textContent = sizes.sample.join(", ") || "(none)";
      document.getElementById("size-time").textContent = `of ${sizes.customers.toLocaleString("en")} · ${sizes.seconds.toFixed(2)} s`;
    }
    sizes.blocks.forEach((n, i) => {
      const li = blocksEl.children[i];
      if (li && n >= 0) {
        const s = li.querySelector("[data-size]");
        s.textContent = n.toLocaleString("en") + " customers";
        s.dataset.value = String(n);
      }
    });
  }
  async function post(path, body) {
    const response = await consoleFetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    return response.json();
  }
  async function recount(body, fromYaml) {
    const mine = ++seq;
    const date = document.getElementById("run-date").value;
    document.getElementById("size-total").dataset.state = "counting";
    const blocks = await post(`/api/segments/${segment}/sizes`, Object.assign({ part: "blocks", date }, body));
    if (mine !== seq) return;
    if (fromYaml && blocks.rule !== null && blocks.rule !== undefined) showRule(blocks.rule);
    if (!fromYaml && blocks.yaml && document.activeElement !== yamlEl) yamlEl.value = blocks.yaml;
    showProblems(blocks.problems || []);
    if (!blocks.sizes) { document.getElementById("size-total").dataset.state = "invalid"; return; }
    showSizes(blocks.sizes);
    const total = await post(`/api/segments/${segment}/sizes`, { part: "total", date, rule: blocks.rule });
    if (mine === seq && total.sizes) showSizes(total.sizes);
  }
  const changed = debounce(() => recount({ rule: formRule() }, false), 400);
  const yamlChanged = debounce(() => recount({ yaml: yamlEl.value }, true), 400);

  const events = el("datalist", { id: "known-events" });
  vocab.events.forEach((e) => events.append(el("option", { value: e })));
  document.body.append(events);
  blocksEl.addEventListener("input", changed);
  blocksEl.addEventListener("change", changed);
  kindEl.addEventListener("change", changed);
  document.getElementById("run-date").addEventListener("change", changed);
  yamlEl.addEventListener("input", yamlChanged);
  document.querySelectorAll(".add-block").forEach((b) => {
    b.onclick = () => {
      const kind = b.dataset.kind;
      const start = { attribute: { attribute: vocab.attributes[0], eq: "" }, event: { event: "purchase", within_last: "30d" },
        segment: { segment: vocab.segments[0] }, in_list: { in_list: vocab.lists[0] }, app: { app: {} }, raw: {} }[kind];
      if (kindEl.value === "one" && blocksEl.children.length) kindEl.value = "all";
      blocksEl.append(blockEl(start, kind));
      changed();
    };
  });
  showRule(data.rule);
  recount({ rule: data.rule }, false);
})();
