// The campaign editor: sections that follow the choices, the YAML and `campaigns validate`'s
// problems at their fields as you type (debounced), and the dry-run funnel on demand.
// Works without it: the form posts itself and the server shows the same problems.
"use strict";
(function () {
  const form = document.getElementById("campaign-form");
  if (!form) return;
  const campaign = form.dataset.campaign;
  const MULTI = new Set(["include", "exclude", "schedule_days"]);

  function fields() {
    const out = {};
    for (const [key, value] of new FormData(form).entries()) {
      if (key === "csrf_token" || key === "version") continue;
      if (MULTI.has(key)) (out[key] = out[key] || []).push(value);
      else out[key] = value;
    }
    for (const key of MULTI) out[key] = out[key] || [];
    return out;
  }

  function current(name) {
    const checked = form.querySelector(`[name="${name}"]:checked`);
    if (checked && checked.type === "radio") return checked.value;
    const el = form.querySelector(`[name="${name}"]`);
    return el ? el.value : "";
  }

  function follow() {
    for (const el of document.querySelectorAll("[data-when]")) {
      const [name, value] = el.dataset.when.split("=");
      el.hidden = current(name) !== value;
    }
  }

  function showProblems(problems) {
    for (const list of document.querySelectorAll("[data-problems-for]")) {
      list.replaceChildren();
      list.hidden = true;
    }
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const p of problems) {
      const field = p.field || "_";
      const list = document.querySelector(`[data-problems-for="${field}"]`) ||
        document.querySelector('[data-problems-for="_"]');
      const item = document.createElement("li");
      item.textContent = p.message;
      list.appendChild(item);
      list.hidden = false;
      const input = form.querySelector(`[name="${field}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
    }
    const summary = document.getElementById("problems");
    if (summary) summary.hidden = true;  // the server's list from the last save: now shown at the fields
    document.getElementById("yaml-state").textContent = problems.length ? `${problems.length} problem(s)` : "valid";
    form.dataset.state = problems.length ? "invalid" : "valid";
  }

  async function check() {
    const response = await consoleFetch(`/api/campaigns/${campaign}/check`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ fields: fields() }),
    });
    if (!response.ok) return;
    const body = await response.json();
    document.getElementById("yaml-preview").textContent = body.yaml;
    showProblems(body.problems);
  }

  function row(table, label, value, klass) {
    const tr = document.createElement("tr");
    if (klass) tr.className = klass;
    const th = document.createElement("th");
    th.textContent = label;
    const td = document.createElement("td");
    td.className = "num";
    td.textContent = value.toLocaleString("en");
    tr.append(th, td);
    table.appendChild(tr);
  }

  async function plan() {
    const status = document.getElementById("plan-status");
    const table = document.querySelector("#plan-table tbody");
    const started = performance.now();
    status.textContent = "Computing…";
    document.getElementById("plan").dataset.state = "computing";
    const response = await consoleFetch(`/api/campaigns/${campaign}/plan`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ fields: fields(), date: document.getElementById("plan-date").value }),
    });
    const body = await response.json();
    table.replaceChildren();
    document.getElementById("plan-table").hidden = true;
    document.getElementById("plan-others").hidden = true;
    if (!response.ok) {
      if (body.problems) showProblems(body.problems);
      status.textContent = body.error || "Fix the problems first: the funnel is computed for a valid campaign.";
      document.getElementById("plan").dataset.state = "refused";
      return;
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (!body.scheduled) {
      status.textContent = `Not scheduled on ${body.date}: the night sends nothing for it that day.`;
    } else if (!body.campaign.length) {
      status.textContent = `Nothing to target on ${body.date}.`;
    } else {
      const f = body.campaign[0];
      row(table, "segment", f.segment_size);
      for (const reason of body.reasons) {
        if (f.excluded[reason]) row(table, `− ${reason.replaceAll("_", " ")}`, f.excluded[reason], "reason");
      }
      row(table, "targeted", f.targeted, "total");
      document.getElementById("plan-table").hidden = false;
      document.getElementById("plan-table").dataset.targeted = String(f.targeted);
      status.textContent = `For the night of ${body.date} (${seconds} s); nothing was written.`;
      const others = document.querySelector("#plan-others tbody");
      others.replaceChildren();
      for (const o of body.others) {
        const tr = document.createElement("tr");
        for (const v of [o.campaign_id, o.segment_size.toLocaleString("en"), o.targeted.toLocaleString("en")]) {
          const td = document.createElement("td");
          td.textContent = v;
          tr.appendChild(td);
        }
        others.appendChild(tr);
      }
      document.getElementById("plan-others").hidden = !body.others.length;
    }
    document.getElementById("plan").dataset.state = "done";
  }

  const later = debounce(check, 400);
  form.addEventListener("input", () => { follow(); later(); });
  form.addEventListener("change", () => { follow(); later(); });
  document.getElementById("plan-button").addEventListener("click", plan);
  follow();
  check();
})();
