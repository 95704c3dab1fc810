// The template editor: 400 ms after the last edit the console checks the template in its file (with
// `campaigns validate`'s own check) and, when it passes, renders it for real customers. The page shows
// the problems under the YAML and the preview in a sandboxed frame: no script runs there and it loads
// nothing. Nothing here is trusted: the server checks every edit, and saving is a plain form post.
"use strict";
(function () {
  const root = document.getElementById("template-editor");
  if (!root) return;
  const template = root.dataset.template;
  const textEl = document.getElementById("template-text");
  const localeEl = document.getElementById("locale");
  const customersEl = document.getElementById("customers");
  const frame = document.getElementById("preview-frame");
  const stateEl = document.getElementById("preview-state");
  const errorEl = document.getElementById("preview-error");
  let seq = 0;

  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => (k === "class" ? (node.className = v) : node.setAttribute(k, v)));
    children.forEach((c) => node.append(c));
    return node;
  };
  function setState(state, text) {
    stateEl.dataset.state = state;
    stateEl.textContent = text;
    frame.dataset.state = state;
  }
  // Which request the page shows (data-answer): set once the answer is on screen, the frame loaded.
  const answered = (mine) => { root.dataset.answer = String(mine); };
  function showProblems(problems) {
    const box = document.getElementById("live-problems");
    box.replaceChildren();
    if (problems.length) {
      textEl.setAttribute("aria-invalid", "true");
      textEl.setAttribute("aria-describedby", "problems");
      box.append(el("ul", { class: "problems", id: "problems", role: "alert" }, ...problems.map((p) => el("li", {}, p))));
    } else {
      textEl.removeAttribute("aria-invalid");
      textEl.removeAttribute("aria-describedby");
    }
  }
  function showError(message) {
    errorEl.hidden = !message;
    errorEl.textContent = message || "";
    customersEl.toggleAttribute("aria-invalid", Boolean(message));
  }
  function showLocales(locales) {
    // The edit may add or remove a translation: offer what the checked template has, keep the choice.
    const chosen = localeEl.value;
    const options = [el("option", { value: "" }, "each customer's own")];
    locales.forEach((l, i) => options.push(el("option", { value: l }, i === 0 ? `${l} (default content)` : l)));
    localeEl.replaceChildren(...options);
    localeEl.value = locales.includes(chosen) ? chosen : "";
  }
  function customers() {
    return customersEl.value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  }
  async function refresh() {
    const mine = ++seq;
    setState("rendering", "Checking and rendering…");
    let answer;
    try {
      const response = await consoleFetch(`/api/templates/${template}/preview`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ yaml: textEl.value, locale: localeEl.value, customers: customers() }),
      });
      answer = await response.json();
    } catch (e) {
      if (mine === seq) { setState("failed", "The console did not answer: try again."); answered(mine); }
      return;
    }
    if (mine !== seq) return; // a later edit's answer is on its way
    showProblems(answer.problems || []);
    showError(answer.error || "");
    if (!answer.ok || answer.error || typeof answer.html !== "string") {
      setState("invalid", answer.ok ? "Not previewed." : "Not previewed: fix the problems under the YAML.");
      answered(mine);
      return;
    }
    if (answer.locales) showLocales(answer.locales);
    const messages = answer.messages || [];
    const failed = messages.filter((m) => m.error).length;
    frame.onload = () => {
      if (mine !== seq) return; // a later edit is being checked
      setState("shown", messages.length
        ? `${messages.length} customer${messages.length === 1 ? "" : "s"}, ${failed} would not be sent (render errors).`
        : "No customers in the warehouse yet: import data to see a preview.");
      answered(mine);
    };
    frame.srcdoc = answer.html;
  }
  const changed = debounce(refresh, 400);
  textEl.addEventListener("input", changed);
  customersEl.addEventListener("input", changed);
  localeEl.addEventListener("change", changed);
  refresh();
})();
